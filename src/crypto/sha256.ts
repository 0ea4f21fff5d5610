/**
 * SHA-256 is injected where the moment its answer arrives matters (the snapshot store hashes
 * pieces a group at a time and awaits each group); this is the type taken. The real one and the
 * simulator's are in src/io/sha256.ts.
 */
export type Sha256 = (bytes: Uint8Array) => Promise<Uint8Array>;
