/** `kiln build`: realise derivations by building them, as `nix-store --realise` / `nix-build`. */

import { decodeNixString } from "../../hashing/mod.ts";
import {
  type BuildResult,
  type BuildTarget,
  exitCodeOf,
  nixStatusOf,
  planBuild,
  realise,
} from "../../scheduler/mod.ts";
import { addIndirectRoot, LocalStore, replaceSymlink } from "../../store/mod.ts";
import { parseCommandArgs, UsageError } from "../args.ts";
import { type Command, printJson, printLines, printStderr } from "../command.ts";
import { realiseOptions } from "../build_settings.ts";
import { openDisplay } from "../display.ts";
import { addDerivations } from "../_derivation_input.ts";
import { importDerivationFiles } from "../_derivation_files.ts";
import { dryRun } from "./_dry_run.ts";

const USAGE = `Usage: kiln build [OPTIONS] INSTALLABLE...

Builds derivations and prints their output paths, one per line. An INSTALLABLE is a .drv store
path, optionally followed by ^OUT1,OUT2 or ^* (all outputs, the default), or '-': stdin holds
.drv paths one per line, or derivation documents (what 'kiln derivation add' reads), which are
added first and whose top-level derivations are built. A .drv path the store lacks that exists as
a file (nix-instantiate's, in a Nix store with the same store dir) is added from there with its
inputs, each checked against its path.

Options (each also a setting, settable with --option NAME VALUE or in kiln.conf):
  -j, --max-jobs N            concurrent builds (default: number of CPUs)
      --cores N               NIX_BUILD_CORES for builders (0 = all CPUs)
  -k, --keep-going            build what can be built after a failure
  -K, --keep-failed           keep the build dirs of failed builds
      --max-silent-time S     kill a builder silent for S seconds
      --timeout S             kill a builder running for S seconds
      --log-lines N           log lines quoted when a build fails (default 25)
      --max-build-log-size B  kill a builder after B bytes of log
      --sandbox, --no-sandbox build in the sandbox, or not (setting: true|false|relaxed)
      --sandbox-paths "P[=HOST] ..."  host paths visible in the sandbox (default /bin/sh)
      --substituters "URL ..."  binary caches to substitute outputs from, before building
      --fallback              build what could not be substituted (else that is an error)
Flags:
  -L, --print-build-logs      print builders' output, each line prefixed with '<name>> '
      --log-format FORMAT     bar (a status line; the default on a terminal), bar-with-logs
                              (and builders' lines), raw (plain lines; the default elsewhere),
                              internal-json (Nix's '@nix {...}' event lines)
      --check                 rebuild valid derivations and compare (needs the sandbox)
      --rounds N              build N times and compare
      --repair                rebuild outputs whose contents no longer match their hash
      --json                  print one result object per derivation instead of paths
  -o, --out-link PATH         make result symlinks PATH, PATH-dev ... (as nix-build)
      --offline               do not consult substituters
      --dry-run               print what would be built and fetched (with sizes); do neither
With --max-jobs 0 nothing is built locally: what is not substituted fails.
Exit status as Nix: 100 build failure, +1 timeout, +2 hash mismatch, +4 check mismatch (104);
1 for other errors. Logs: 'kiln log DRV'.`;

/** Options that are also settings: flag name -> setting name. */
const SETTING_FLAGS: Record<string, string> = {
  "max-jobs": "max-jobs",
  cores: "cores",
  "keep-going": "keep-going",
  "keep-failed": "keep-failed",
  "max-silent-time": "max-silent-time",
  timeout: "timeout",
  "log-lines": "log-lines",
  "max-build-log-size": "max-build-log-size",
  "sandbox-paths": "sandbox-paths",
  substituters: "substituters",
};

const OPTIONS = {
  "max-jobs": { type: "string", short: "j" },
  cores: { type: "string" },
  "keep-going": { type: "boolean", short: "k" },
  "keep-failed": { type: "boolean", short: "K" },
  "max-silent-time": { type: "string" },
  timeout: { type: "string" },
  "log-lines": { type: "string" },
  "max-build-log-size": { type: "string" },
  sandbox: { type: "boolean" },
  "no-sandbox": { type: "boolean" },
  "sandbox-paths": { type: "string" },
  "print-build-logs": { type: "boolean", short: "L" },
  "log-format": { type: "string" },
  check: { type: "boolean" },
  rounds: { type: "string" },
  repair: { type: "boolean" },
  json: { type: "boolean" },
  "out-link": { type: "string", short: "o" },
  substituters: { type: "string" },
  fallback: { type: "boolean" },
  offline: { type: "boolean" },
  "dry-run": { type: "boolean" },
} as const;

export const buildCommand: Command = {
  usage: USAGE,
  run,
};

async function run(args: string[]): Promise<number> {
  const { values, positionals, config: getConfig } = parseCommandArgs(args, OPTIONS);
  if (positionals.length === 0) throw new UsageError("kiln build needs an INSTALLABLE");
  const config = getConfig();
  const { settings } = config;
  for (const [flag, name] of Object.entries(SETTING_FLAGS)) {
    const value = (values as Record<string, unknown>)[flag];
    if (value !== undefined) settings.set(name, String(value));
  }
  if (values.sandbox) settings.set("sandbox", "true");
  if (values["no-sandbox"]) settings.set("sandbox", "false");
  const rounds = values.rounds === undefined ? 1 : positiveInt("--rounds", values.rounds);
  if (values.check && values.repair) throw new UsageError("--check and --repair do not mix");
  const display = openDisplay(values["log-format"], values["print-build-logs"] ?? false);

  const store = LocalStore.open(config);
  // Ctrl-C (or SIGTERM) cancels the run, whatever it is doing: substituting or building.
  const controller = new AbortController();
  const onSignal = () =>
    controller.abort(new DOMException("Interrupted by the user", "AbortError"));
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  try {
    const targets = await readInstallables(store, positionals);
    await importDerivationFiles(store, targets.map((t) => t.drvPath));
    if (values["dry-run"]) {
      const plan = planBuild(store, targets, { check: values.check, repair: values.repair });
      const substitute = !values.offline && !values.check && !values.repair;
      return await dryRun(plan, { store, config, substitute });
    }
    await using run = realise(store, targets, {
      ...realiseOptions(config, settings, { rounds }),
      check: values.check,
      repair: values.repair,
      substitution: values.offline || settings.getList("substituters").length === 0 ? undefined : {
        // The binary cache modules load only when there are caches to ask.
        open: async () => (await import("../substituters.ts")).openSubstituter(store, config),
        maxJobs: settings.getInt("max-substitution-jobs"),
        fallback: values.fallback || settings.getBool("fallback"),
      },
      signal: controller.signal,
      estimate: display.estimate,
      onEvent: display.onEvent,
    });
    const outcome = await run.outcome;
    display.close();
    if (controller.signal.aborted) printStderr("error: interrupted by the user");
    if (outcome.status === "substitution-failed") return 1;
    const { plan, results } = outcome;
    if (values.json) printJson([...results.values()].map(jsonResult));
    const code = exitCodeOf(results.values());
    if (code !== 0) {
      // As Nix 2.8 ends a run in which several requested derivations were not built.
      const failed = plan.targets.filter((p) => results.get(p)?.status === "failed").sort();
      if (failed.length > 1) {
        printStderr(`error: build of ${failed.map((p) => `'${p}'`).join(", ")} failed`);
      }
      return code;
    }
    const lines: string[] = [];
    for (const [i, target] of targets.entries()) {
      const outputs = results.get(target.drvPath)!;
      if (outputs.status === "failed") continue;
      for (const [name, path] of Object.entries(outputs.outputs)) {
        if (target.outputs !== undefined && !target.outputs.includes(name)) continue;
        lines.push(path);
        if (values["out-link"] !== undefined) {
          const link = outLinkName(values["out-link"], i, name);
          replaceSymlink(link, store.physicalPath(path));
          addIndirectRoot(store, link);
        }
      }
    }
    if (!values.json) printLines(lines);
    return 0;
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
    display.close();
    store.close();
  }
}

/** Parses the installables, adding derivation documents given on stdin first. */
async function readInstallables(store: LocalStore, args: string[]): Promise<BuildTarget[]> {
  const targets: BuildTarget[] = [];
  for (const arg of args) {
    if (arg !== "-") {
      targets.push(parseInstallable(arg));
      continue;
    }
    const text = decodeNixString(
      new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer()),
    );
    if (text.trimStart().startsWith("/")) {
      for (const line of text.split("\n")) {
        if (line.trim() !== "") {
          targets.push(parseInstallable(line.trim()));
        }
      }
      continue;
    }
    const added = await addDerivations(store, text);
    const inputs = new Set([...added.values()].flatMap((drv) => [...drv.inputDrvs.keys()]));
    for (const path of added.keys()) if (!inputs.has(path)) targets.push({ drvPath: path });
  }
  return targets;
}

function parseInstallable(text: string): BuildTarget {
  const caret = text.lastIndexOf("^");
  if (caret < 0) return { drvPath: text };
  const spec = text.slice(caret + 1);
  const drvPath = text.slice(0, caret);
  if (spec === "*") return { drvPath };
  const outputs = spec.split(",");
  if (outputs.some((o) => o === "")) throw new UsageError(`Bad output list in '${text}'`);
  return { drvPath, outputs };
}

function positiveInt(what: string, text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) {
    throw new UsageError(`${what} needs a positive whole number, not '${text}'`);
  }
  return Number(text);
}

function jsonResult(result: BuildResult): Record<string, unknown> {
  const json: Record<string, unknown> = {
    drvPath: result.path,
    status: nixStatusOf(result),
    outputs: result.status === "failed" ? {} : result.outputs,
    timesBuilt: result.timesBuilt,
    startTime: Math.floor(result.startTime / 1000),
    stopTime: Math.floor(result.stopTime / 1000),
  };
  if (result.status === "failed") json.errorMsg = result.message;
  return json;
}

/** `result`, `result-dev`, `result-2`, `result-2-dev` ... as nix-build names them. */
function outLinkName(base: string, index: number, output: string): string {
  const stem = index === 0 ? base : `${base}-${index + 1}`;
  return output === "out" ? stem : `${stem}-${output}`;
}
