/** Randomness is injected into the pure modules; this is the type they take. */
export type Random = (bytes: number) => Uint8Array;
