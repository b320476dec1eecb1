/** `kiln build`: realise derivations by building them, as `nix-store --realise` / `nix-build`. */

import { join } from "node:path";
import { decodeDerivationBytes } from "../../derivation/mod.ts";
import {
  makeSandboxShare,
  makeStoreView,
  parseSandboxBackend,
  probeNamespaces,
  probeSandbox,
  type SandboxBackend,
  type SandboxShare,
  withElfDependencies,
} from "../../sandbox/mod.ts";
import {
  BuildDirs,
  buildLogDir,
  type BuildPlan,
  type BuildResult,
  type BuildSettings,
  type BuildTarget,
  type DerivationGoals,
  exitCodeOf,
  makeDerivationGoals,
  nixStatusOf,
  planBuild,
  runGoals,
  type SchedulerEvent,
  Watchdog,
} from "../../scheduler/mod.ts";
import { LocalStore, removeTree } from "../../store/mod.ts";
import { parseCommandArgs, UsageError } from "../args.ts";
import { type Command, printJson, printLines, printStderr, warn } from "../command.ts";
import type { Config, Settings } from "../config.ts";
import { addDerivations } from "../_derivation_input.ts";
import { substituteOutputs } from "../_substitute_step.ts";

const USAGE = `Usage: kiln build [OPTIONS] INSTALLABLE...

Builds derivations and prints their output paths, one per line. An INSTALLABLE is a .drv store
path, optionally followed by ^OUT1,OUT2 or ^* (all outputs, the default), or '-': stdin holds
.drv paths one per line, or derivation documents (what 'kiln derivation add' reads), which are
added first and whose top-level derivations are built.

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
      --check                 rebuild valid derivations and compare (needs the sandbox)
      --rounds N              build N times and compare
      --repair                rebuild outputs whose contents no longer match their hash
      --json                  print one result object per derivation instead of paths
  -o, --out-link PATH         make result symlinks PATH, PATH-dev ... (as nix-build)
      --offline               do not consult substituters
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
  check: { type: "boolean" },
  rounds: { type: "string" },
  repair: { type: "boolean" },
  json: { type: "boolean" },
  "out-link": { type: "string", short: "o" },
  substituters: { type: "string" },
  fallback: { type: "boolean" },
  offline: { type: "boolean" },
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

  const store = LocalStore.open(config);
  try {
    const targets = await readInstallables(store, positionals);
    const planOptions = { check: values.check, repair: values.repair };
    let plan = planBuild(store, targets, planOptions);
    if (!values.offline && !values.check && !values.repair) {
      const failed = await substituteOutputs(store, config, plan, new AbortController().signal);
      if (failed !== undefined) {
        for (const result of failed) {
          if (result.status === "failed") printStderr(`error: ${result.message}`);
        }
        if (failed.length > 0 && !(values.fallback || settings.getBool("fallback"))) {
          printStderr("error: some substitutes failed; use --fallback to build them instead");
          return 1;
        }
        plan = planBuild(store, targets, planOptions); // what arrived is valid now
      }
    }
    const toBuild = plan.roots.filter((p, i) =>
      !plan.graph.get(p)!.valid && plan.roots.indexOf(p) === i
    );
    const buildSettings = await resolveBuildSettings(settings, {
      rounds,
      needed: toBuild.length,
      storeRoot: config.storeRoot,
    });
    if (buildSettings.sandbox === "off" && values.check) {
      throw new UsageError(
        "--check needs the sandbox: without it the rebuilt outputs would overwrite the valid ones",
      );
    }
    announce(toBuild);
    const results = await realise(store, config, plan, buildSettings, {
      keepGoing: settings.getBool("keep-going"),
      maxJobs: maxJobs(settings),
      printLogs: values["print-build-logs"] ?? false,
      check: values.check ?? false,
    });
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
          makeOutLink(outLinkName(values["out-link"], i, name), store.physicalPath(path));
        }
      }
    }
    if (!values.json) printLines(lines);
    return 0;
  } finally {
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
    const text = decodeDerivationBytes(
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

function maxJobs(settings: Settings): number {
  return settings.get("max-jobs") === "auto"
    ? navigator.hardwareConcurrency
    : settings.getInt("max-jobs");
}

/**
 * Settings for the builds, probing the sandbox's backends once when something is to be built (and,
 * for unsandboxed builds with a store root other than `/`, whether namespaces can show the store).
 */
async function resolveBuildSettings(
  settings: Settings,
  options: { rounds: number; needed: number; storeRoot: string },
): Promise<BuildSettings & { storeView: boolean }> {
  const mode = settings.get("sandbox");
  if (mode !== "true" && mode !== "false" && mode !== "relaxed") {
    throw new TypeError(`Setting 'sandbox' has value '${mode}', expected true, false or relaxed`);
  }
  const backend = parseSandboxBackend(settings.get("sandbox-backend"));
  let sandbox: BuildSettings["sandbox"] = mode === "true" ? "on" : mode === "false" ? "off" : mode;
  let sandboxBackend: SandboxBackend | undefined;
  if (sandbox !== "off" && options.needed > 0) {
    const probe = await probeSandbox({ backend });
    if (probe.ok) {
      sandboxBackend = probe.backend;
      if (probe.bwrapProblem !== undefined) {
        warn(
          `bubblewrap does not work here (${probe.bwrapProblem}); sandboxing with user namespaces (unshare)`,
        );
      } else if (probe.backend === "namespaces") {
        warn("sandboxing with user namespaces (unshare), as sandbox-backend says");
      }
    } else {
      if (!settings.getBool("sandbox-fallback")) {
        throw new TypeError(`The sandbox does not work here (${probe.reason})`);
      }
      warn(`the sandbox does not work here (${probe.reason}); building without it`);
      sandbox = "off";
    }
  }
  // Unsandboxed builders see the store at its logical place through namespaces where they work.
  const storeView = sandbox !== "on" && options.storeRoot !== "/" && options.needed > 0 &&
    backend !== "bwrap" &&
    (sandboxBackend === "namespaces" || (await probeNamespaces()).ok);
  const cores = settings.getInt("cores");
  const sandboxPaths = settings.getList("sandbox-paths");
  return {
    cores: cores === 0 ? navigator.hardwareConcurrency : cores,
    timeout: settings.getInt("timeout"),
    maxSilentTime: settings.getInt("max-silent-time"),
    logLines: settings.getInt("log-lines"),
    maxLogSize: settings.getInt("max-build-log-size"),
    sandbox,
    // What a sandboxed builder loads (`ld.so --list`, a process) matters only in a sandbox.
    sandboxPaths: sandbox === "off" ? sandboxPaths : withElfDependencies(sandboxPaths),
    sandboxBuildDir: settings.get("sandbox-build-dir"),
    keepFailed: settings.getBool("keep-failed"),
    rounds: options.rounds,
    sandboxBackend,
    storeView,
  };
}

function announce(toBuild: string[]): void {
  if (toBuild.length === 0) return;
  const head = toBuild.length === 1
    ? "this derivation will be built:"
    : `these ${toBuild.length} derivations will be built:`;
  printStderr([head, ...[...toBuild].sort().map((p) => `  ${p}`)].join("\n"));
}

/** Runs the goals with the CLI's progress lines, live logs and signal handling. */
async function realise(
  store: LocalStore,
  config: Config,
  plan: BuildPlan,
  settings: BuildSettings & { storeView: boolean },
  options: { keepGoing: boolean; maxJobs: number; printLogs: boolean; check: boolean },
): Promise<Map<string, BuildResult>> {
  const controller = new AbortController();
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    controller.abort(new DOMException("Interrupted by the user", "AbortError"));
  };
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  const needed = plan.roots.some((p) => !plan.graph.get(p)!.valid);
  // Only unsandboxed builders need it (bwrap's --die-with-parent covers the others).
  const watchdog = needed && (settings.sandbox !== "on" || settings.sandboxBackend !== "bwrap")
    ? await Watchdog.start()
    : undefined;
  let shareDir: string | undefined;
  let viewDir: string | undefined;
  const background = new Set<Promise<void>>();
  const buildDirs = new BuildDirs(Deno.env.get("TMPDIR") || "/tmp", background);
  let goals: DerivationGoals | undefined;
  // -L: a build started early is announced once its dependency has succeeded; its lines wait
  // until then, and go only to its log if that dependency fails.
  const announced = new Set<string>();
  const held = new Map<string, string[]>();
  try {
    let sandboxShare: SandboxShare | undefined;
    if (needed && settings.sandbox !== "off") {
      shareDir = store.makeTempPath("sandbox-share");
      sandboxShare = makeSandboxShare(shareDir, { sandboxBuildDir: settings.sandboxBuildDir });
    }
    if (needed && settings.storeView) viewDir = store.makeTempPath("store-view");
    const storeView = viewDir === undefined ? undefined : makeStoreView(viewDir, config);
    goals = makeDerivationGoals({
      store,
      storeRoot: config.storeRoot,
      settings,
      plan,
      logDir: buildLogDir(config.stateDir),
      buildDirs,
      impureEnv: Deno.env.toObject(),
      watchdog,
      sandboxShare,
      storeView,
      background,
      onLine: options.printLogs
        ? (drvPath, line) => {
          const text = `${plan.derivations.get(drvPath)!.drv.name}> ${line}`;
          if (announced.has(drvPath)) return printStderr(text);
          let lines = held.get(drvPath);
          if (lines === undefined) held.set(drvPath, lines = []);
          lines.push(text);
        }
        : undefined,
      onNote: (message) => printStderr(`note: ${message}`),
      onWarning: warn,
    });
    const onEvent = (event: SchedulerEvent) => {
      if (event.type === "started") {
        const verb = options.check && plan.derivations.get(event.path)!.check
          ? "checking outputs of"
          : "building";
        printStderr(`${verb} '${event.path}'...`);
        announced.add(event.path);
        for (const text of held.get(event.path) ?? []) printStderr(text);
        held.delete(event.path);
        return;
      }
      held.delete(event.path); // never announced: its lines stay in its log only
      if (event.result.status === "failed" && event.result.reason !== "cancelled") {
        printStderr(`error: ${event.result.message}`);
      }
    };
    const results = await runGoals(plan.graph, plan.roots, {
      build: goals.build,
      prepare: goals.prepare,
      maxJobs: options.maxJobs,
      keepGoing: options.keepGoing,
      signal: controller.signal,
      onEvent,
    });
    if (interrupted) printStderr("error: interrupted by the user");
    return results;
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
    await goals?.releasePrepared();
    await Promise.all(background);
    buildDirs.close();
    if (shareDir !== undefined) removeTree(shareDir);
    if (viewDir !== undefined) removeTree(viewDir);
    await watchdog?.close();
  }
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

/** Points `link` at `target`, replacing an existing symlink atomically. */
function makeOutLink(link: string, target: string): void {
  const temp = join(link + `.tmp-${Deno.pid}`);
  try {
    Deno.removeSync(temp);
  } catch {
    // not there
  }
  Deno.symlinkSync(target, temp);
  Deno.renameSync(temp, link);
}
