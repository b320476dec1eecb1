import { assertEquals } from "../_assert.ts";
import { type Accounts, decideTrust, matchUser, namePeer } from "../../lib/daemon/mod.ts";

/** alice (1000, group users) and bob (1001, group bob, listed in wheel); uid 4242 has no name. */
const ACCOUNTS: Accounts = {
  userName: (uid) => ({ 0: "root", 1000: "alice", 1001: "bob" } as Record<number, string>)[uid],
  groupName: (gid) => ({ 0: "root", 100: "users", 1001: "bob" } as Record<number, string>)[gid],
  groupMembers: (group) => ({ wheel: ["bob"], users: [] } as Record<string, string[]>)[group],
};

const alice = namePeer(ACCOUNTS, 1000, 100);
const bob = namePeer(ACCOUNTS, 1001, 1001);

Deno.test("namePeer() names a peer by uid and gid, or by the numbers when they have no name", () => {
  assertEquals(alice, { user: "alice", group: "users" });
  assertEquals(namePeer(ACCOUNTS, 4242, 4243), { user: "4242", group: "4243" });
});

Deno.test("matchUser() matches names, * and @group (primary group or listed member)", () => {
  assertEquals(matchUser(ACCOUNTS, alice, ["*"]), true);
  assertEquals(matchUser(ACCOUNTS, alice, ["alice"]), true);
  assertEquals(matchUser(ACCOUNTS, alice, ["bob", "@wheel"]), false);
  assertEquals(matchUser(ACCOUNTS, alice, ["@users"]), true);
  assertEquals(matchUser(ACCOUNTS, bob, ["@wheel"]), true);
  assertEquals(matchUser(ACCOUNTS, bob, ["@nosuchgroup"]), false);
  assertEquals(matchUser(ACCOUNTS, bob, []), false);
});

Deno.test("decideTrust() trusts trusted users whatever allowed-users says, refuses the rest", () => {
  const settings = { trustedUsers: ["root", "@wheel"], allowedUsers: ["root"] };
  assertEquals(decideTrust(ACCOUNTS, bob, settings), { allowed: true, trusted: true });
  assertEquals(decideTrust(ACCOUNTS, alice, settings), {
    allowed: false,
    error: "user 'alice' is not allowed to connect to the Nix daemon",
  });
  assertEquals(decideTrust(ACCOUNTS, alice, { trustedUsers: ["root"], allowedUsers: ["*"] }), {
    allowed: true,
    trusted: false,
  });
});
