/**
 * The build settings of a command that builds (`kiln build`, `kiln daemon`, `kiln store verify
 * --repair`), read from kiln's settings.
 */

import type { BuildSettings } from "../scheduler/mod.ts";
import type { Settings } from "./config.ts";

/** `max-jobs`: `auto` is the number of CPUs. */
export function maxJobs(settings: Settings): number {
  return settings.get("max-jobs") === "auto"
    ? navigator.hardwareConcurrency
    : settings.getInt("max-jobs");
}

/** The build settings as asked for (the run probes the sandbox when it needs it). */
export function buildSettings(settings: Settings, rounds: number): BuildSettings {
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
