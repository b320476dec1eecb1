import { assertEquals, assertMatch } from "../_assert.ts";
import { closureIgnored, lines, withClosure } from "./_closure.ts";

// Nix fixes every order here (a topological sort with ties by path, its work lists sorted by
// path), so outputs are compared byte for byte, never sorted.
Deno.test({
  name: "kiln store query prints what nix-store -q prints, for every query of Nix 2.8",
  ignore: closureIgnored,
  fn: () =>
    withClosure(async (nix, kiln, c) => {
      const drvs = lines(await nix.run("nix-store", ["-q", "-R", c.topDrv]))
        .filter((p) => p.endsWith(".drv"));
      const outputs = [c.top, c.leaf, c.mid, c.self, ...c.multi];
      const all = [...drvs, ...outputs];
      const cases: string[][] = [
        ...["--outputs", "--deriver", "-d", "--tree", "--hash", "--size"].map((q) => [q, ...all]),
        ["--graph", ...all],
        ["--graphml", ...all],
        ["-u", "--hash", c.topDrv, c.multiDrv, c.leaf],
        ["-R", "--include-outputs", c.topDrv, c.leaf],
        [c.multiDrv, c.leaf], // no query: --outputs
      ];
      for (const path of [c.top, c.multi[1], c.leaf, c.self, c.topDrv, c.multiDrv]) {
        for (const q of ["--references", "--referrers", "-R", "--referrers-closure", "--graph"]) {
          cases.push([q, path]);
        }
        cases.push(["--graphml", path], ["--tree", path], ["-R", "--include-outputs", path]);
      }
      for (const q of ["--references", "--requisites", "--size", "--graph"]) {
        cases.push(["--use-output", q, c.multiDrv]);
      }
      for (const args of cases) {
        const [want, got] = await Promise.all([
          nix.run("nix-store", ["-q", ...args]),
          kiln.ok(["store", "query", ...args]),
        ]);
        assertEquals(got, want, args.map((a) => a.replace(/.*\//, "")).join(" "));
      }
    }),
});

Deno.test({
  name: "kiln store query --valid-derivers and --closure-size, where Nix 2.8 has no such query",
  ignore: closureIgnored,
  fn: () =>
    withClosure(async (nix, kiln, c) => {
      // Later Nix's --valid-derivers: the valid .drv files that list the path as an output.
      assertEquals(lines(await kiln.ok(["store", "query", "--valid-derivers", c.multi[2]])), [
        c.multiDrv,
      ]);
      assertEquals(await kiln.ok(["store", "query", "--valid-derivers", c.topDrv]), "");
      // The closure's NAR sizes added up: what 'nix path-info -S' calls closureSize.
      const paths = [c.top, c.leaf, c.multi[0]];
      const info = JSON.parse(await nix.run("nix", ["path-info", "--json", "-S", ...paths])) as {
        path: string;
        closureSize: number;
      }[];
      const sizes = new Map(info.map((i) => [i.path, String(i.closureSize)]));
      assertEquals(
        lines(await kiln.ok(["store", "query", "--closure-size", ...paths])),
        paths.map((p) => sizes.get(p)),
      );
    }),
});

Deno.test({
  name: "kiln store query --roots names the roots that keep a path alive, as nix-store -q --roots",
  ignore: closureIgnored,
  fn: () =>
    withClosure(async (nix, kiln, c) => {
      // The same roots in both stores, as out-links in directories of their own.
      const links = { nix: `${nix.root}/links`, kiln: `${kiln.root}/links` };
      for (const dir of Object.values(links)) Deno.mkdirSync(dir);
      for (const [name, path] of [["top", c.top], ["mid", c.mid], ["dev", c.multi[1]]]) {
        await nix.run("nix-store", ["--add-root", `${links.nix}/${name}`, "--realise", path]);
        await kiln.ok(["store", "add-root", `${links.kiln}/${name}`, path]);
      }
      for (const path of [c.leaf, c.mid, c.top, c.self, c.multi[0], c.multiDrv]) {
        const want = lines(await nix.run("nix-store", ["-q", "--roots", path]))
          .map((line) => line.replace(links.nix, links.kiln)).sort();
        const got = lines(await kiln.ok(["store", "query", "--roots", path]));
        assertEquals(got, want, path);
        // leaf is kept by all three (dev refers to multi's out, which refers to mid); top by one.
        if (path === c.leaf) assertEquals(got.length, 3, got.join("\n"));
        if (path === c.top) assertEquals(got, [`${links.kiln}/top -> ${c.top}`]);
      }
    }),
});

Deno.test({
  name: "kiln store query refuses two queries at once and invalid paths in one line",
  ignore: closureIgnored,
  fn: () =>
    withClosure(async (_nix, kiln, c) => {
      const both = await kiln.run(["store", "query", "--tree", "-R", c.top]);
      assertEquals(both.code, 1);
      assertMatch(both.stderr, /^error: Query type '--\S+' conflicts with '--\S+'\n/);
      const missing = c.top.replace(/\/[a-z0-9]{32}-/, `/${"0".repeat(32)}-`);
      const invalid = await kiln.run(["store", "query", "--references", missing]);
      assertEquals(invalid.code, 1);
      assertEquals(invalid.stderr, `error: Path '${missing}' is not valid\n`);
      assertEquals(invalid.stdout, "");
    }),
});
