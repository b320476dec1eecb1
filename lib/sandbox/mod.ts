/** Running builders: their environment, the sandbox (bubblewrap or namespaces), processes, logs. */

export * from "./build_env.ts";
export * from "./bwrap.ts";
export * from "./namespaces.ts";
export * from "./backend.ts";
export * from "./log_lines.ts";
export * from "./spawn.ts";
export * from "./elf_deps.ts";
export * from "./sandbox_path.ts";
