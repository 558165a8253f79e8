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
  /**
   * The strict check of a policy bundle (JSON bytes of `{format, schema,
   * policies}`): `{type: 'valid', report}` or `{type: 'invalid', problems}`.
   */
  check(bundle: Uint8Array): unknown;
  /**
   * Loads a draft bundle, runs the synchronous `f` with `call` answering
   * under it, and loads the module's own policies again. `loaded` is the
   * draft's load answer (a failure when it does not load; `f` is not run).
   */
  withPolicies<T>(bundle: Uint8Array, f: (call: (json: string) => string) => T): { loaded: unknown; result: T | undefined };
}

/** Compiles and instantiates the whole `gatehouse.wasm` and loads its policies. */
export function loadGatehouse(bytes: Uint8Array | ArrayBuffer): Promise<Gatehouse>;

/**
 * The same from a `fetch` response, compiled while it downloads
 * (`WebAssembly.compileStreaming`; the bytes are compiled after the download
 * when the content type is not `application/wasm`).
 */
export function loadGatehouseStreaming(response: Response): Promise<Gatehouse>;
