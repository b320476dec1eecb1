import { pathExists } from "../../lib/store/mod.ts";
import { assert, assertEquals } from "../_assert.ts";
import { makeFifo, openFifo } from "../_process.ts";
import { addAll, withStore } from "./_drv.ts";

Deno.test("kiln store gc beside a running build keeps its inputs and what it has built", () =>
  withStore(async (store, set) => {
    // The builder of `waits` says it runs on `ready`, then waits for a line on `go`.
    const ready = `${store.root}/ready`;
    const go = `${store.root}/go`;
    makeFifo(ready);
    makeFifo(go);
    const input = set.add({ name: "input", script: "echo input > $out" });
    const first = set.add({ name: "first", script: "echo first > $out" });
    const waits = set.add({
      name: "waits",
      inputs: [input, first],
      script: `echo ready > ${ready}; read x < ${go}; echo ${input.outputs.out} > $out`,
    });
    await addAll(store, set);
    await store.ok(["build", "--no-sandbox", input.path]); // valid before the run, rooted by none
    Deno.writeTextFileSync(`${store.root}/junk`, "junk\n");
    const junk = (await store.ok(["store", "add", `${store.root}/junk`])).trim();
    const result = `${store.root}/result`;
    const build = store.run(["build", "--no-sandbox", "-o", result, waits.path]);
    const readyEnd = await openFifo(ready, "read", build);
    assertEquals(
      new TextDecoder().decode(await new Response(readyEnd.readable).bytes()),
      "ready\n",
    );

    // While the builder runs: its inputs (one built by this run) and the derivations stay.
    const kept = [input.outputs.out, first.outputs.out, input.path, first.path, waits.path];
    const collected = await store.run(["store", "gc"]);
    assertEquals(collected.code, 0, collected.stderr);
    assertEquals(collected.stdout, "1 store paths deleted, 0.00 MiB freed\n");
    assertEquals(lines(await store.ok(["store", "gc", "--print-live"])), kept.sort());
    for (const path of kept) assert(pathExists(path), `${path} was collected`);
    assert(!pathExists(junk));
    const roots = lines(await store.ok(["store", "gc", "--print-roots"]));
    assert(roots.includes(`{temp:${pidOfTempRoots(store.env.KILN_STATE_DIR)}} -> ${waits.path}`));

    const goEnd = await openFifo(go, "write", build);
    await goEnd.write(new TextEncoder().encode("go\n"));
    goEnd.close();
    const built = await build;
    assertEquals([built.code, built.stdout], [0, `${waits.outputs.out}\n`], built.stderr);

    // Once the run is over, its out-link is the root: the output, its closure and derivers stay.
    assertEquals(lines(await store.ok(["store", "gc", "--print-roots"])), [
      `${result} -> ${waits.outputs.out}`,
    ]);
    await store.ok(["store", "gc"]);
    const live = [waits.outputs.out, input.outputs.out, input.path, waits.path, first.path];
    assertEquals(lines(await store.ok(["store", "gc", "--print-live"])), live.sort());
    assert(!pathExists(first.outputs.out)); // an input of the build, referred to by no output
    Deno.removeSync(result);
    await store.ok(["store", "gc"]);
    assertEquals(await store.ok(["store", "gc", "--print-live"]), "");
    for (const path of live) assert(!pathExists(path), `${path} was not collected`);
  }));

function lines(text: string): string[] {
  return text.split("\n").filter((l) => l !== "");
}

/** The pid of the one process with temporary roots. */
function pidOfTempRoots(stateDir: string): string {
  const names = [...Deno.readDirSync(`${stateDir}/temproots`)].map((e) => e.name);
  assertEquals(names.length, 1);
  return names[0];
}

Deno.test("kiln store gc keeps what a running process uses, unless gc-runtime-roots is false", () =>
  withStore(async (store) => {
    Deno.mkdirSync(`${store.root}/tree`);
    Deno.writeTextFileSync(`${store.root}/tree/file`, "file\n");
    const tree = (await store.ok(["store", "add", `${store.root}/tree`])).trim();
    // A shell working in the dead path says it runs, then waits for a line on stdin.
    const shell = new Deno.Command("/bin/sh", {
      args: ["-c", "echo ready; read x"],
      cwd: tree,
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const output = shell.stdout.getReader();
    assertEquals(new TextDecoder().decode((await output.read()).value), "ready\n");

    assertEquals(await store.ok(["store", "gc"]), "0 store paths deleted, 0.00 MiB freed\n");
    assert(pathExists(tree));
    const roots = lines(await store.ok(["store", "gc", "--print-roots"]));
    assertEquals(roots, [`/proc/${shell.pid}/cwd -> ${tree}`]);
    const off = ["--option", "gc-runtime-roots", "false"];
    assertEquals(await store.ok(["store", "gc", "--print-roots", ...off]), "");
    assertEquals(lines(await store.ok(["store", "gc", "--print-dead", ...off])), [tree]);
    await store.ok(["store", "gc", ...off]);
    assert(!pathExists(tree));

    const input = shell.stdin.getWriter();
    await input.write(new TextEncoder().encode("done\n"));
    await input.close();
    assertEquals((await output.read()).done, true);
    assertEquals((await shell.status).code, 0);
  }));
