/**
 * Killing a builder's whole process tree. The builder leads its own session and process group
 * (spawned `detached`, i.e. after setsid), so `kill(-pid)` reaches everything that stayed in the
 * group; members that moved to another group or session are found through /proc as descendants
 * or session members. Everything found is stopped first (so nothing forks while we look), then
 * killed.
 */

interface ProcessEntry {
  pid: number;
  ppid: number;
  pgrp: number;
  session: number;
}

/** SIGKILLs the process group and session led by `leader` and all descendants of `leader`. */
export function killProcessTree(leader: number): void {
  signal(-leader, "SIGSTOP");
  const seen = new Set<number>();
  for (let round = 0; round < 100; round++) {
    const found = treeMembers(leader).filter((pid) => !seen.has(pid));
    if (found.length === 0) break;
    for (const pid of found) {
      seen.add(pid);
      signal(pid, "SIGSTOP");
    }
  }
  signal(-leader, "SIGKILL");
  for (const pid of seen) signal(pid, "SIGKILL");
}

/** SIGKILLs whatever is left in the process group `leader` led (after it exited). */
export function killProcessGroup(leader: number): void {
  signal(-leader, "SIGKILL");
}

function treeMembers(leader: number): number[] {
  const entries = readProcesses();
  const children = new Map<number, number[]>();
  for (const e of entries) children.set(e.ppid, [...(children.get(e.ppid) ?? []), e.pid]);
  const members = new Set<number>();
  for (const e of entries) {
    if (e.pid === leader || e.pgrp === leader || e.session === leader) members.add(e.pid);
  }
  const queue = [...members];
  while (queue.length > 0) {
    for (const child of children.get(queue.pop()!) ?? []) {
      if (!members.has(child)) {
        members.add(child);
        queue.push(child);
      }
    }
  }
  return [...members];
}

function readProcesses(): ProcessEntry[] {
  const entries: ProcessEntry[] = [];
  for (const dirent of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(dirent.name)) continue;
    let stat: string;
    try {
      stat = Deno.readTextFileSync(`/proc/${dirent.name}/stat`);
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    entries.push({
      pid: Number(dirent.name),
      ppid: Number(fields[1]),
      pgrp: Number(fields[2]),
      session: Number(fields[3]),
    });
  }
  return entries;
}

function signal(pid: number, sig: Deno.Signal): void {
  try {
    Deno.kill(pid, sig);
  } catch {
    // already gone
  }
}
