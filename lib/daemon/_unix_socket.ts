/**
 * A listening Unix socket made and accepted through libc, because the kernel's word on who
 * connected (`SO_PEERCRED`) is read from the accepted descriptor, which a `Deno.UnixConn` does
 * not expose. Each accepted connection is read and written through libc on Deno's blocking
 * threads, as a pair of streams.
 */

import { cString, errno, type Libc, loadLibc } from "../sys/mod.ts";
import type { Connection } from "./_session.ts";

/** The constants of `<sys/socket.h>` and `<sys/un.h>` used here (Linux's values). */
const SOCK = {
  AF_UNIX: 1,
  SOCK_STREAM: 1,
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SO_PEERCRED: 17,
  SHUT_RDWR: 2,
  SHUT_WR: 1,
  MSG_NOSIGNAL: 0x4000,
  /** `sizeof(struct sockaddr_un)`: the family, then 108 bytes of path. */
  SOCKADDR_UN_SIZE: 110,
} as const;
const READ_SIZE = 64 * 1024;

/** Who is at the other end of a connection, as the kernel saw it when the client connected. */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** An accepted client: its byte streams and its credentials. */
export interface UnixClient extends Omit<Connection, "trusted"> {
  readonly peer: PeerCredentials;
  /** Ends both directions at once (a session blocked reading sees the end). */
  shutdown(): void;
}

/** A Unix socket accepting clients; `close()` ends a pending {@link UnixListener.accept}. */
export class UnixListener {
  #closed = false;
  #accepting = 0;

  private constructor(private readonly libc: Libc, private readonly fd: number) {}

  /** Binds and listens on `path` (which must not exist), with the mode the umask leaves. */
  static listen(path: string): UnixListener {
    const libc = loadLibc();
    if (libc === undefined) {
      throw new Error("kiln daemon --socket needs libc through FFI (Linux, --allow-ffi)");
    }
    const encoded = cString(path);
    if (encoded.length > SOCK.SOCKADDR_UN_SIZE - 2) {
      throw new RangeError(`Socket path '${path}' is longer than a Unix socket's 107 bytes`);
    }
    const fd = libc.symbols.socket(SOCK.AF_UNIX, SOCK.SOCK_STREAM | SOCK.SOCK_CLOEXEC, 0);
    if (fd < 0) throw new Error(`Cannot create a Unix socket: errno ${errno(libc)}`);
    const address = new Uint8Array(SOCK.SOCKADDR_UN_SIZE);
    new DataView(address.buffer).setUint16(0, SOCK.AF_UNIX, true);
    address.set(encoded, 2);
    if (
      libc.symbols.bind(fd, address, SOCK.SOCKADDR_UN_SIZE) < 0 || libc.symbols.listen(fd, 128) < 0
    ) {
      const code = errno(libc);
      libc.symbols.close(fd);
      throw new Error(`Cannot listen on Unix socket '${path}': errno ${code}`);
    }
    return new UnixListener(libc, fd);
  }

  /** The next client, or undefined once the listener is closed. */
  async accept(): Promise<UnixClient | undefined> {
    const { symbols } = this.libc;
    this.#accepting++;
    try {
      while (!this.#closed) {
        const fd = await symbols.accept4(this.fd, null, null, SOCK.SOCK_CLOEXEC);
        if (fd < 0) continue; // closed (shutdown wakes it), or a client that gave up at once
        if (this.#closed) {
          symbols.close(fd);
          break;
        }
        return openClient(this.libc, fd);
      }
      return undefined;
    } finally {
      if (--this.#accepting === 0 && this.#closed) symbols.close(this.fd);
    }
  }

  /** Stops accepting; the descriptor is closed once no accept is waiting on it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.libc.symbols.shutdown(this.fd, SOCK.SHUT_RDWR);
    if (this.#accepting === 0) this.libc.symbols.close(this.fd);
  }
}

function peerCredentials(libc: Libc, fd: number): PeerCredentials {
  const cred = new Uint8Array(12);
  const length = new Uint32Array([cred.length]);
  if (libc.symbols.getsockopt(fd, SOCK.SOL_SOCKET, SOCK.SO_PEERCRED, cred, length) < 0) {
    throw new Error(`Cannot read a client's credentials: errno ${errno(libc)}`);
  }
  const view = new DataView(cred.buffer);
  return {
    pid: view.getInt32(0, true),
    uid: view.getUint32(4, true),
    gid: view.getUint32(8, true),
  };
}

/**
 * The streams of accepted descriptor `fd`. The descriptor is closed once both directions are
 * done and no read or write is still running on a thread.
 */
function openClient(libc: Libc, fd: number): UnixClient {
  const { symbols } = libc;
  let peer: PeerCredentials;
  try {
    peer = peerCredentials(libc, fd);
  } catch (e) {
    symbols.close(fd);
    throw e;
  }
  let open = 2; // the readable and the writable side
  let busy = 0;
  const release = () => {
    if (open === 0 && busy === 0) symbols.close(fd);
  };
  const endSide = () => {
    open--;
    release();
  };
  const run = async <T>(call: () => Promise<T>): Promise<T> => {
    busy++;
    try {
      return await call();
    } finally {
      busy--;
      release();
    }
  };
  let readEnded = false;
  const endRead = () => {
    if (readEnded) return;
    readEnded = true;
    endSide();
  };
  const readable = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const buffer = new Uint8Array(READ_SIZE);
      const n = Number(await run(() => symbols.readWait(fd, buffer, BigInt(buffer.length))));
      if (n > 0) return controller.enqueue(buffer.subarray(0, n));
      controller.close(); // end of stream, or an error reading: the client is gone either way
      endRead();
    },
    cancel() {
      symbols.shutdown(fd, SOCK.SHUT_RDWR); // a read still waiting on its thread returns
      endRead();
    },
  });
  let writeEnded = false;
  const endWrite = () => {
    if (writeEnded) return;
    writeEnded = true;
    symbols.shutdown(fd, SOCK.SHUT_WR);
    endSide();
  };
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      for (let at = 0; at < chunk.length;) {
        const part = chunk.slice(at);
        const n = Number(
          await run(() => symbols.sendWait(fd, part, BigInt(part.length), SOCK.MSG_NOSIGNAL)),
        );
        if (n < 0) throw new Error("Cannot write to the client: the connection is closed");
        at += n;
      }
    },
    close: endWrite,
    abort: endWrite,
  });
  return {
    peer,
    readable,
    writable,
    shutdown: () => {
      if (open > 0) symbols.shutdown(fd, SOCK.SHUT_RDWR);
    },
  };
}
