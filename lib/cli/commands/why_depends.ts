/** `kiln why-depends PKG DEP`: why PKG's closure holds DEP, as `nix why-depends`. */

import { parseStorePath } from "../../hashing/mod.ts";
import { explainDependency, LocalStore } from "../../store/mod.ts";
import { parseCommandArgs, UsageError } from "../args.ts";
import { type Command, printLines, printStderr } from "../command.ts";

const USAGE = `Usage: kiln why-depends [--all|-a] [--precise] PKG DEP

Shows the chain of references by which store path PKG depends on store path DEP: the shortest
one, or with --all every path between them; with --precise the files of each path that hold the
next one's hash, with the bytes around it. Prints what 'nix why-depends' prints, colours
included. When DEP is not in PKG's closure, says so on stderr and exits 0, as Nix.`;

export const whyDependsCommand: Command = {
  usage: USAGE,
  run(args) {
    const { values, positionals, config } = parseCommandArgs(args, {
      all: { type: "boolean", short: "a" },
      precise: { type: "boolean" },
    });
    if (positionals.length !== 2) throw new UsageError("kiln why-depends needs PKG and DEP");
    const [pkg, dep] = positionals;
    const store = LocalStore.open(config());
    try {
      for (const path of positionals) parseStorePath(store.storeDir, path);
      const references = (path: string) => {
        const info = store.queryPathInfo(path);
        if (info === undefined) throw new RangeError(`Path '${path}' is not valid`);
        return info.references;
      };
      const lines = explainDependency(pkg, dep, references, {
        all: values.all,
        physicalPath: values.precise ? (p) => store.physicalPath(p) : undefined,
      });
      if (lines === undefined) printStderr(`'${pkg}' does not depend on '${dep}'`);
      else printLines(lines);
      return Promise.resolve(0);
    } finally {
      store.close();
    }
  },
};
