// Types of loader.mjs, for TypeScript callers (the browser UI).

/** The loaded module: its hashes and the two doors to the same function. */
export interface Gatehouse {
  /** sha256 (hex) of the very bytes that were compiled. */
  moduleSha256: string;
  /** sha256 of the policy bundle the module carries. */
  policyHash: string;
  /** JSON envelope in, JSON answer out (the same bytes as every runtime). */
  call(json: string): string;
  /** The same with JS objects. */
  evaluate(envelope: object): unknown;
}

/** Compiles and instantiates the whole `gatehouse.wasm` and loads its policies. */
export function loadGatehouse(bytes: Uint8Array | ArrayBuffer): Promise<Gatehouse>;
