/**
 * A binary cache over HTTP(S): GET and HEAD to read, PUT to write (as Nix's HttpBinaryCacheStore).
 * 404 and 403 mean "no such file" (S3 answers 403 for a missing key). A cache that cannot be
 * connected to, or whose answer does not start within the connect timeout, is unavailable.
 */

import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CacheBackend, CacheUnavailableError, checkFileName } from "./_backend.ts";

export class HttpCacheBackend implements CacheBackend {
  /** `base` ends with '/'. */
  constructor(readonly base: string, readonly connectTimeoutMs: number) {}

  async read(name: string, signal?: AbortSignal): Promise<ReadableStream<Uint8Array> | undefined> {
    const response = await this.#request("GET", name, { signal });
    if (response === undefined) return undefined;
    return response.body ?? new ReadableStream({ start: (c) => c.close() });
  }

  async readAll(name: string, signal?: AbortSignal): Promise<Uint8Array<ArrayBuffer> | undefined> {
    const response = await this.#request("GET", name, { signal });
    return response && new Uint8Array(await response.arrayBuffer());
  }

  async exists(name: string, signal?: AbortSignal): Promise<boolean> {
    const response = await this.#request("HEAD", name, { signal });
    await response?.body?.cancel();
    return response !== undefined;
  }

  async write(name: string, body: Uint8Array<ArrayBuffer>, contentType: string): Promise<void> {
    await this.#put(name, body, contentType);
  }

  stagingPath(): string {
    return join(tmpdir(), `kiln-upload-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`);
  }

  async upload(name: string, staged: string, contentType: string): Promise<void> {
    try {
      using file = await Deno.open(staged);
      await this.#put(name, file.readable, contentType);
    } finally {
      await Deno.remove(staged);
    }
  }

  async #put(name: string, body: BodyInit, contentType: string): Promise<void> {
    const response = await this.#request("PUT", name, { body, contentType });
    await response?.body?.cancel();
    if (response === undefined) {
      throw new Error(`Cannot upload '${this.base}${name}': the server answered not found`);
    }
  }

  /** Sends one request; undefined for 404/403, throws for any other failure. */
  async #request(
    method: string,
    name: string,
    options: { signal?: AbortSignal; body?: BodyInit; contentType?: string },
  ): Promise<Response | undefined> {
    checkFileName(name);
    const url = this.base + name;
    const connect = new AbortController();
    const timer = setTimeout(
      () =>
        connect.abort(new CacheUnavailableError(`no answer within ${this.connectTimeoutMs} ms`)),
      this.connectTimeoutMs,
    );
    const signal = options.signal
      ? AbortSignal.any([options.signal, connect.signal])
      : connect.signal;
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        signal,
        body: options.body,
        headers: options.contentType ? { "content-type": options.contentType } : undefined,
      });
    } catch (e) {
      if (options.signal?.aborted) throw options.signal.reason;
      const why = connect.signal.aborted
        ? (connect.signal.reason as Error).message
        : (e as Error).message.split("\n")[0];
      throw new CacheUnavailableError(`Cannot ${method} '${url}': ${why}`);
    } finally {
      clearTimeout(timer);
    }
    if (response.ok) return response;
    await response.body?.cancel();
    if (response.status === 404 || response.status === 403) return undefined;
    const error = `${method} '${url}' failed: HTTP ${response.status} ${response.statusText}`;
    if (response.status >= 500) throw new CacheUnavailableError(error);
    throw new Error(error);
  }
}
