/** The part of `unbzip2-stream`'s API kiln uses (the package ships no types). */

interface UnbzipStream {
  write(chunk: Uint8Array): boolean;
  end(): void;
  on(event: "data", listener: (chunk: Uint8Array) => void): this;
  on(event: "error", listener: (error: unknown) => void): this;
  on(event: "end", listener: () => void): this;
}

declare function unbzip2Stream(): UnbzipStream;
export default unbzip2Stream;
