/**
 * kiln's daemon: Nix's worker protocol served over a connection (a Unix socket's, or stdin and
 * stdout), a thin session over the store and `realise()`, with nix-daemon's trust: who may
 * connect and who is trusted, from the peer's uid as the kernel gives it.
 */

import { ADD_HANDLERS } from "./_add.ts";
import { BUILD_HANDLERS } from "./_build.ts";
import { QUERY_HANDLERS } from "./_queries.ts";
import { type Connection, type DaemonOptions, serveConnection as serve } from "./_session.ts";

export {
  type Connection,
  DAEMON_MIN_VERSION,
  type DaemonOptions,
  type RealiseBase,
  SessionError,
} from "./_session.ts";

export {
  type Accounts,
  decideTrust,
  matchUser,
  namePeer,
  type Peer,
  systemAccounts,
  type TrustDecision,
  type TrustSettings,
} from "./_trust.ts";
export { type PeerCredentials, type UnixClient, UnixListener } from "./_unix_socket.ts";

const HANDLERS = new Map([...QUERY_HANDLERS, ...ADD_HANDLERS, ...BUILD_HANDLERS]);

/**
 * Serves one client until it hangs up. Rejects with what ended the connection early: a bad
 * handshake, an unsupported or malformed operation (the client was told), a broken pipe.
 */
export function serveConnection(connection: Connection, options: DaemonOptions): Promise<void> {
  return serve(connection, options, HANDLERS);
}
