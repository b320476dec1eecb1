/** A binary cache in a local directory (`file:///dir`). Writes land atomically (temp + rename). */

import { dirname, join } from "node:path";
import { type CacheBackend, checkFileName } from "./_backend.ts";

export class FileCacheBackend implements CacheBackend {
  #made = new Set<string>();

  constructor(readonly dir: string) {}

  read(name: string): Promise<ReadableStream<Uint8Array> | undefined> {
    checkFileName(name);
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(join(this.dir, name));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return Promise.resolve(undefined);
      throw e;
    }
    return Promise.resolve(readChunks(file));
  }

  async readAll(name: string, signal?: AbortSignal): Promise<Uint8Array<ArrayBuffer> | undefined> {
    checkFileName(name);
    try {
      // One read on Deno's I/O threads, into a buffer of the file's size.
      return await Deno.readFile(join(this.dir, name), { signal });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
  }

  exists(name: string): Promise<boolean> {
    checkFileName(name);
    try {
      Deno.statSync(join(this.dir, name));
      return Promise.resolve(true);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return Promise.resolve(false);
      throw e;
    }
  }

  write(name: string, body: Uint8Array): Promise<void> {
    const staged = this.stagingPath();
    Deno.writeFileSync(staged, body, { mode: 0o644 });
    return this.upload(name, staged);
  }

  stagingPath(): string {
    this.#mkdir(this.dir);
    return join(this.dir, `.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`);
  }

  upload(name: string, staged: string): Promise<void> {
    checkFileName(name);
    const dest = join(this.dir, name);
    try {
      this.#mkdir(dirname(dest));
      Deno.chmodSync(staged, 0o644);
      Deno.renameSync(staged, dest);
    } catch (e) {
      Deno.removeSync(staged);
      throw e;
    }
    return Promise.resolve();
  }

  #mkdir(dir: string): void {
    if (this.#made.has(dir)) return;
    Deno.mkdirSync(dir, { recursive: true });
    this.#made.add(dir);
  }
}

const CHUNK_SIZE = 1 << 20;

/**
 * The file's bytes in chunks of up to 1 MiB, read synchronously as the stream is pulled: a local
 * read is faster than Deno's async reads (64 KiB each, through the thread pool). Reading stops
 * at the size the file had when opened; the file is closed at the end, on error and on cancel.
 */
function readChunks(file: Deno.FsFile): ReadableStream<Uint8Array> {
  let open = true;
  const close = () => {
    if (open) file.close();
    open = false;
  };
  let left = file.statSync().size;
  return new ReadableStream({
    pull(controller) {
      try {
        const buffer = new Uint8Array(Math.min(CHUNK_SIZE, left));
        const n = left > 0 ? file.readSync(buffer) : null;
        if (n === null) {
          close();
          controller.close();
        } else {
          left -= n;
          controller.enqueue(buffer.subarray(0, n));
        }
      } catch (e) {
        close();
        throw e;
      }
    },
    cancel: close,
  }, { highWaterMark: 0 });
}
