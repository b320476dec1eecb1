/**
 * Worker modules as a compiled kiln finds them: embedded by the compile task's `--include`, and
 * started by a URL relative to the module that starts them, never through the working directory.
 */

import { assertEquals } from "./_assert.ts";

const ROOT = new URL("../", import.meta.url);

/** Every `*_worker.ts` under lib/, as paths from the repository's root. */
function workerModules(dir = "lib"): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync(new URL(dir, ROOT))) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) found.push(...workerModules(path));
    else if (entry.name.endsWith("_worker.ts")) found.push(path);
  }
  return found.sort();
}

Deno.test("deno.json's compile task embeds every worker module, each started beside it", () => {
  const config = JSON.parse(Deno.readTextFileSync(new URL("deno.json", ROOT)));
  const words: string[] = config.tasks.compile.split(/\s+/);
  const included = words.flatMap((word, i) => words[i - 1] === "--include" ? [word] : []);
  const workers = workerModules();
  assertEquals(workers.length > 0, true);
  assertEquals(included.sort(), workers);
  for (const worker of workers) {
    const [folder, name] = [worker.slice(0, worker.lastIndexOf("/")), worker.split("/").at(-1)];
    const starters = [...Deno.readDirSync(new URL(folder, ROOT))].filter((e) =>
      e.isFile && Deno.readTextFileSync(new URL(`${folder}/${e.name}`, ROOT))
        .includes(`new Worker(new URL("./${name}", import.meta.url)`)
    );
    assertEquals(starters.length, 1, `${worker} is started by one module beside it`);
  }
});

Deno.test("every worker module starts and answers from another working directory", async () => {
  const cwd = Deno.makeTempDirSync({ prefix: "kiln-workers-" });
  try {
    const probe = new URL("_worker_probe.ts", import.meta.url);
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--quiet", probe.href],
      cwd,
      stdin: "null",
    }).output();
    const decoder = new TextDecoder();
    assertEquals({ code, stderr: decoder.decode(stderr) }, { code: 0, stderr: "" });
    const lines = decoder.decode(stdout).trim().split("\n").sort();
    const names = workerModules().map((path) => path.split("/").at(-1));
    assertEquals(lines, names.map((name) => `${name}: ok`).sort());
  } finally {
    Deno.removeSync(cwd, { recursive: true });
  }
});
