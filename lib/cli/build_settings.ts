/**
 * What a command that builds (`kiln build`, `kiln daemon`, `kiln store verify --repair`) gives a
 * build run, read from kiln's settings.
 */

import { parseSandboxBackend } from "../sandbox/mod.ts";
import type { LivenessOptions } from "../store/mod.ts";
import { buildLogDir, type BuildSettings, type RealiseOptions } from "../scheduler/mod.ts";
import type { Config, Settings } from "./config.ts";

/** The options of a build run in `config`'s store with `settings`, as every command gives them. */
export function realiseOptions(
  config: Config,
  settings: Settings,
  options: { rounds: number },
): RealiseOptions {
  return {
    storeRoot: config.storeRoot,
    logDir: buildLogDir(config.stateDir),
    tmpDir: Deno.env.get("TMPDIR") || "/tmp",
    impureEnv: Deno.env.toObject(),
    settings: buildSettings(settings, options.rounds),
    sandboxFallback: settings.getBool("sandbox-fallback"),
    sandboxBackend: parseSandboxBackend(settings.get("sandbox-backend")),
    maxJobs: maxJobs(settings),
    keepGoing: settings.getBool("keep-going"),
    autoGc: {
      minFree: settings.getInt("min-free"),
      maxFree: settings.getInt("max-free"),
      ...gcLiveness(settings),
    },
  };
}

/** What keeps store paths alive in a collection, by the settings named as Nix's. */
export function gcLiveness(settings: Settings): LivenessOptions {
  return {
    keepOutputs: settings.getBool("keep-outputs"),
    keepDerivations: settings.getBool("keep-derivations"),
    runtimeRoots: settings.getBool("gc-runtime-roots"),
  };
}

/** `max-jobs`: `auto` is the number of CPUs. */
function maxJobs(settings: Settings): number {
  return settings.get("max-jobs") === "auto"
    ? navigator.hardwareConcurrency
    : settings.getInt("max-jobs");
}

/** The build settings as asked for (the run probes the sandbox when it needs it). */
function buildSettings(settings: Settings, rounds: number): BuildSettings {
  const mode = settings.get("sandbox");
  if (mode !== "true" && mode !== "false" && mode !== "relaxed") {
    throw new TypeError(`Setting 'sandbox' has value '${mode}', expected true, false or relaxed`);
  }
  const cores = settings.getInt("cores");
  return {
    cores: cores === 0 ? navigator.hardwareConcurrency : cores,
    timeout: settings.getInt("timeout"),
    maxSilentTime: settings.getInt("max-silent-time"),
    logLines: settings.getInt("log-lines"),
    maxLogSize: settings.getInt("max-build-log-size"),
    sandbox: mode === "true" ? "on" : mode === "false" ? "off" : mode,
    sandboxPaths: settings.getList("sandbox-paths"),
    sandboxBuildDir: settings.get("sandbox-build-dir"),
    keepFailed: settings.getBool("keep-failed"),
    rounds,
  };
}
