/** The goal scheduler: runs build and substitute goals over a dependency graph, as Nix's Worker. */

export * from "./build_result.ts";
export * from "./events.ts";
export * from "./slots.ts";
export * from "./goal_function.ts";
export * from "./worker.ts";
export * from "./plan.ts";
export * from "./derivation_goal.ts";
export * from "./watchdog.ts";
export * from "./substitution_frontier.ts";
export * from "./missing.ts";
export * from "./build_log.ts";
export * from "./realise.ts";
export * from "./run_events.ts";
export { BuildDirs } from "./_build_dirs.ts";
