/**
 * A command given as one string (`command: sh -c 'echo hi'`) split into words as the docker CLI's
 * compose loader does (POSIX-shell-like, as google/shlex): whitespace separates words, single
 * quotes keep everything, double quotes keep everything but `\"` and `\\`, a backslash outside
 * quotes escapes the next character, and `#` at the start of a word comments out the rest.
 */
export function splitCommand(text: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else if (c === '#' && word === null) {
      break;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end === -1) throw new Error(`unclosed single quote in ${JSON.stringify(text)}`);
      word = (word ?? '') + text.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let part = '';
      for (i++; ; i++) {
        if (i >= text.length) throw new Error(`unclosed double quote in ${JSON.stringify(text)}`);
        const d = text[i]!;
        if (d === '"') break;
        if (d === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\')) part += text[++i];
        else part += d;
      }
      word = (word ?? '') + part;
    } else if (c === '\\') {
      if (i + 1 >= text.length) throw new Error(`trailing backslash in ${JSON.stringify(text)}`);
      word = (word ?? '') + text[++i];
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== null) words.push(word);
  return words;
}
