/**
 * Who may connect and whom the daemon trusts, as nix-daemon decides it: from the peer's uid and
 * gid as the kernel gives them, matched against `allowed-users` and `trusted-users` (names,
 * `@group`, `*`). Names come from the system's user and group databases (`/etc/passwd`,
 * `/etc/group`); a uid or gid without a name is matched as its number.
 */

/** The user and group databases, as far as trust needs them. */
export interface Accounts {
  userName(uid: number): string | undefined;
  groupName(gid: number): string | undefined;
  /** The members a group lists (not those for whom it is the primary group). */
  groupMembers(group: string): readonly string[] | undefined;
}

/** A connecting client, named. */
export interface Peer {
  user: string;
  group: string;
}

/** A client is refused, or trusted or not. */
export type TrustDecision =
  | { allowed: false; error: string }
  | { allowed: true; trusted: boolean };

/** The lists of `trusted-users` and `allowed-users`. */
export interface TrustSettings {
  trustedUsers: readonly string[];
  allowedUsers: readonly string[];
}

/** Names a peer by its uid and gid, as nix-daemon does. */
export function namePeer(accounts: Accounts, uid: number, gid: number): Peer {
  return {
    user: accounts.userName(uid) ?? String(uid),
    group: accounts.groupName(gid) ?? String(gid),
  };
}

/** Whether `peer` matches `users` (Nix's `matchUser`). */
export function matchUser(accounts: Accounts, peer: Peer, users: readonly string[]): boolean {
  if (users.includes("*") || users.includes(peer.user)) return true;
  return users.some((entry) => {
    if (!entry.startsWith("@")) return false;
    const group = entry.slice(1);
    return group === peer.group || (accounts.groupMembers(group)?.includes(peer.user) ?? false);
  });
}

/** nix-daemon's decision: trusted users are always allowed, others only if allowed. */
export function decideTrust(
  accounts: Accounts,
  peer: Peer,
  settings: TrustSettings,
): TrustDecision {
  if (matchUser(accounts, peer, settings.trustedUsers)) return { allowed: true, trusted: true };
  if (matchUser(accounts, peer, settings.allowedUsers)) return { allowed: true, trusted: false };
  return {
    allowed: false,
    error: `user '${peer.user}' is not allowed to connect to the Nix daemon`,
  };
}

/** The accounts of `/etc/passwd` and `/etc/group` (read each time: they change rarely). */
export function systemAccounts(etc = "/etc"): Accounts {
  const rows = (file: string) =>
    readOptional(`${etc}/${file}`).split("\n").filter((l) => l !== "" && !l.startsWith("#"))
      .map((l) => l.split(":"));
  return {
    userName: (uid) => rows("passwd").find((r) => r[2] === String(uid))?.[0],
    groupName: (gid) => rows("group").find((r) => r[2] === String(gid))?.[0],
    groupMembers: (group) =>
      rows("group").find((r) => r[0] === group)?.[3]?.split(",").filter((m) => m !== ""),
  };
}

function readOptional(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return "";
    throw e;
  }
}
