/**
 * Fair side-by-side measurement: the tools take turns going first (`inTurns`), and a tool that
 * follows a large delete starts on a settled machine (`settle`).
 */

/**
 * Runs `kiln` and `nix` (when given) once each, kiln first in even runs and Nix first in odd
 * ones, so that neither always runs in the other's wake.
 */
export async function inTurns<T>(
  run: number,
  kiln: () => Promise<T>,
  nix?: () => Promise<T>,
): Promise<[T, T | undefined]> {
  if (nix === undefined) return [await kiln(), undefined];
  if (run % 2 === 1) {
    const n = await nix();
    return [await kiln(), n];
  }
  const k = await kiln();
  return [k, await nix()];
}

/**
 * Lets a benchmark's next tool start on a machine that does not remember what ran before it.
 * `sync` writes the page cache back; then, as root, the clean page cache is dropped
 * (`/proc/sys/vm/drop_caches`), because of what ext4 without a journal (this VM's disk) does when
 * it allocates an inode: it passes over every freed inode whose inode table block is still cached
 * and looks recently deleted (`recently_deleted()`), a check that here keeps failing for as long as
 * the block stays cached. Right after a 46,000-file store was deleted, creating a file in the same
 * block group costs ~0.5 ms instead of ~30 us, for minutes: whichever tool ran next was measured
 * at several times its speed. Dropping the cache evicts the inputs too, so `warm` (trees the next
 * tool reads) is read once more afterwards, and so does it evict the tools: each is started once
 * (`kiln --version`, `nix-store --version`), or the first to run after a settle would pay for
 * reading its executable from disk (~170 ms for Deno's 95 MB here, a few ms for Nix's).
 */
export async function settle(warm: string[] = []): Promise<void> {
  await new Deno.Command("sync").output();
  if (Deno.uid() !== 0) return;
  Deno.writeTextFileSync("/proc/sys/vm/drop_caches", "1");
  const commands = [[KILN, "--version"], ["nix-store", "--version"]];
  for (const tree of warm) {
    commands.push(["sh", "-c", 'find "$1" -type f -exec cat {} + > /dev/null', "sh", tree]);
  }
  for (const [cmd, ...args] of commands) {
    await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output().catch(() => {});
  }
}

const KILN = new URL("kiln", import.meta.url).pathname;
