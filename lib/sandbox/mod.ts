/** Running builders: their environment, the bubblewrap sandbox, processes and their log. */

export * from "./build_env.ts";
export * from "./bwrap.ts";
export * from "./log_lines.ts";
export * from "./spawn.ts";
export * from "./elf_deps.ts";
export * from "./sandbox_path.ts";
