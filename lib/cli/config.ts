/**
 * Where the store lives and every other setting: flags, environment, `kiln.conf` (nix.conf
 * syntax). Precedence, highest first: `--store-dir`/`--option` flags, `KILN_*` environment
 * variables, `KILN_CONFIG` (config text), `$XDG_CONFIG_HOME/kiln/kiln.conf`, built-in defaults.
 */

import { join, resolve } from "node:path";

/** A setting's name, default and what it means (printed by `kiln help settings`). */
export interface SettingSpec {
  name: string;
  default: string;
  description: string;
}

/** Settings kiln knows, named as in nix.conf. */
export const SETTINGS: readonly SettingSpec[] = [
  { name: "max-jobs", default: "auto", description: "build slots (auto = number of CPUs)" },
  { name: "cores", default: "0", description: "NIX_BUILD_CORES for builders (0 = all CPUs)" },
  { name: "keep-going", default: "false", description: "build what can be built after a failure" },
  { name: "keep-failed", default: "false", description: "keep build dirs of failed builds" },
  { name: "max-silent-time", default: "0", description: "seconds of builder silence before kill" },
  { name: "timeout", default: "0", description: "seconds a build may take in all (0 = none)" },
  { name: "log-lines", default: "25", description: "log lines quoted when a build fails" },
  { name: "max-build-log-size", default: "0", description: "log bytes before kill (0 = none)" },
  { name: "sandbox", default: "true", description: "true, false or relaxed" },
  { name: "sandbox-fallback", default: "true", description: "unsandboxed if no sandbox works" },
  { name: "sandbox-backend", default: "auto", description: "auto, bwrap or namespaces" },
  { name: "sandbox-paths", default: "/bin/sh", description: "paths visible in the sandbox" },
  { name: "sandbox-build-dir", default: "/build", description: "the build dir in the sandbox" },
  { name: "substituters", default: "", description: "binary caches, space-separated" },
  { name: "trusted-public-keys", default: "", description: "keys accepted on narinfo files" },
  { name: "require-sigs", default: "true", description: "reject unsigned substitutes" },
  { name: "secret-key-files", default: "", description: "keys that sign what kiln adds" },
  { name: "trusted-users", default: "root", description: "daemon clients trusted as the daemon" },
  { name: "allowed-users", default: "*", description: "users who may connect to the daemon" },
  {
    name: "trusted-substituters",
    default: "",
    description: "caches untrusted daemon clients may use",
  },
  { name: "fallback", default: "false", description: "build when substitution fails" },
  { name: "connect-timeout", default: "5", description: "seconds before a cache is skipped" },
  {
    name: "max-substitution-jobs",
    default: "16",
    description: "concurrent substitutions",
  },
  {
    name: "narinfo-cache-negative-ttl",
    default: "3600",
    description: "seconds a cache's 'no such path' is remembered",
  },
  {
    name: "narinfo-cache-positive-ttl",
    default: "2592000",
    description: "seconds a cache's narinfo is remembered",
  },
  { name: "compression", default: "zstd", description: "NAR compression kiln writes to caches" },
  {
    name: "auto-optimise-store",
    default: "false",
    description: "hard-link identical files of new paths (as kiln store optimise)",
  },
  { name: "keep-outputs", default: "false", description: "gc keeps outputs of live derivations" },
  {
    name: "keep-derivations",
    default: "true",
    description: "gc keeps derivations of live outputs",
  },
  {
    name: "min-free",
    default: "0",
    description: "bytes: a build collects garbage when less is free on the store's file system",
  },
  {
    name: "max-free",
    default: "9223372036854775807",
    description: "bytes that collection tries to make free",
  },
  {
    name: "gc-runtime-roots",
    default: "true",
    description: "gc keeps the store paths running processes use (found in /proc)",
  },
];

const SPECS = new Map(SETTINGS.map((s) => [s.name, s]));

/** Typed view of settings gathered from every source. */
export class Settings {
  readonly #values = new Map<string, string>();
  readonly warnings: string[] = [];

  /** Sets `name` (a known nix.conf name) to `value`; an unknown name is recorded as a warning. */
  set(name: string, value: string): void {
    if (!SPECS.has(name)) this.warnings.push(`unknown setting '${name}'`);
    this.#values.set(name, value);
  }

  get(name: string): string {
    return this.#values.get(name) ?? SPECS.get(name)?.default ?? "";
  }

  getBool(name: string): boolean {
    const value = this.get(name);
    if (value === "true") return true;
    if (value === "false") return false;
    throw new TypeError(`Setting '${name}' has value '${value}', expected true or false`);
  }

  getInt(name: string): number {
    const value = this.get(name);
    if (!/^\d+$/.test(value)) {
      throw new TypeError(`Setting '${name}' has value '${value}', expected a whole number`);
    }
    return Number(value);
  }

  getList(name: string): string[] {
    return this.get(name).split(/\s+/).filter((s) => s.length > 0);
  }

  /** Reads nix.conf syntax: `name = value`, `#` comments, `include`/`!include` of other files. */
  applyConfigText(text: string, origin: string): void {
    for (const [i, raw] of text.split("\n").entries()) {
      const line = raw.replace(/#.*$/, "").trim();
      if (line === "") continue;
      const include = line.match(/^(!?)include\s+(.+)$/);
      if (include) {
        const path = resolve(origin === "KILN_CONFIG" ? "." : join(origin, ".."), include[2]);
        let included: string;
        try {
          included = Deno.readTextFileSync(path);
        } catch (e) {
          if (include[1] === "!" && e instanceof Deno.errors.NotFound) continue;
          throw new Error(`Cannot include '${path}' from ${origin}: ${(e as Error).message}`);
        }
        this.applyConfigText(included, path);
        continue;
      }
      const eq = line.indexOf("=");
      if (eq < 0) throw new SyntaxError(`Syntax error in ${origin} line ${i + 1}: '${raw}'`);
      const name = line.slice(0, eq).trim();
      const value = line.slice(eq + 1).trim().split(/\s+/).join(" ");
      if (name.startsWith("extra-")) {
        const base = name.slice("extra-".length);
        this.set(base, [this.get(base), value].filter((s) => s).join(" "));
      } else {
        this.set(name, value);
      }
    }
  }
}

/** Store location and settings, resolved for one command. */
export interface Config {
  /** Logical store dir: the string inside every hash. */
  storeDir: string;
  /** Directory on disk under which `storeDir` lives (`/` = as it is). */
  storeRoot: string;
  /** Database, logs, roots and locks. */
  stateDir: string;
  settings: Settings;
  /** The `auto-optimise-store` setting, for the store. */
  autoOptimiseStore: boolean;
}

/** The global flags every command accepts. */
export interface GlobalFlags {
  storeDir?: string;
  storeRoot?: string;
  stateDir?: string;
  options: [string, string][];
}

/** Resolves the configuration from flags, `env` and config files. */
export function resolveConfig(flags: GlobalFlags, env: Record<string, string | undefined>): Config {
  const home = env.HOME ?? "/";
  const dataHome = env.XDG_DATA_HOME || join(home, ".local/share");
  const stateHome = env.XDG_STATE_HOME || join(home, ".local/state");
  const configHome = env.XDG_CONFIG_HOME || join(home, ".config");

  const settings = new Settings();
  const confFile = join(configHome, "kiln", "kiln.conf");
  let confText: string | undefined;
  try {
    confText = Deno.readTextFileSync(confFile);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (confText !== undefined) settings.applyConfigText(confText, confFile);
  if (env.KILN_CONFIG) settings.applyConfigText(env.KILN_CONFIG, "KILN_CONFIG");
  for (const [name, value] of flags.options) settings.set(name, value);

  const storeDir = stripTrailingSlash(flags.storeDir ?? env.KILN_STORE_DIR ?? "/nix/store");
  if (!storeDir.startsWith("/") || storeDir === "") {
    throw new TypeError(`Store dir '${storeDir}' is not an absolute path`);
  }
  const storeRoot = resolve(flags.storeRoot ?? env.KILN_STORE_ROOT ?? join(dataHome, "kiln"));
  const stateDir = resolve(flags.stateDir ?? env.KILN_STATE_DIR ?? join(stateHome, "kiln"));
  const autoOptimiseStore = settings.getBool("auto-optimise-store");
  return { storeDir, storeRoot, stateDir, settings, autoOptimiseStore };
}

function stripTrailingSlash(path: string): string {
  return path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
}
