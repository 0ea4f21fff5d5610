/**
 * Loaded before every test file (bunfig.toml): tests call src/ functions directly, without the CLI
 * or a daemon, which load the X.509 library before anything reads a certificate (loadX509).
 */
import { loadX509 } from '../src/crypto/index.ts';

await loadX509();
