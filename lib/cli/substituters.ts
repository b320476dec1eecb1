/**
 * The substitution settings of a command, read into library objects: `substituters`,
 * `trusted-public-keys`, `require-sigs`, `connect-timeout`, the narinfo TTLs and
 * `secret-key-files`. Shared by `kiln copy`, `kiln serve` and `kiln build`.
 */

import { type LocalStore, NarInfoDiskCache } from "../store/mod.ts";
import {
  BinaryCache,
  holdCodecWorkers,
  parsePublicKey,
  parseSecretKey,
  type PublicKey,
  type SecretKey,
  Substituter,
} from "../substituter/mod.ts";
import type { Config } from "./config.ts";
import { warn } from "./command.ts";

/** A substituter and the narinfo disk cache it uses, closed together. */
export interface SubstituterHandle extends Disposable {
  substituter: Substituter;
}

/** Options of {@link openSubstituter}. */
export interface OpenSubstituterOptions {
  /** Cache URLs (default: the `substituters` setting). */
  urls?: readonly string[];
  /** Overrides `require-sigs` (e.g. `--no-check-sigs`). */
  requireSigs?: boolean;
}

/** Opens the configured binary caches for substituting into `store`; warnings go to stderr. */
export async function openSubstituter(
  store: LocalStore,
  config: Config,
  options: OpenSubstituterOptions = {},
): Promise<SubstituterHandle> {
  const settings = config.settings;
  const urls = options.urls ?? settings.getList("substituters");
  const connectTimeoutMs = settings.getInt("connect-timeout") * 1000 || 5000;
  const caches = urls.map((url) =>
    BinaryCache.open(url, { storeDir: store.storeDir, connectTimeoutMs })
  );
  const diskCache = NarInfoDiskCache.open(config.stateDir);
  try {
    const substituter = await Substituter.open(store, caches, {
      trustedKeys: readTrustedKeys(config),
      requireSigs: options.requireSigs ?? settings.getBool("require-sigs"),
      diskCache,
      ttls: {
        positive: settings.getInt("narinfo-cache-positive-ttl"),
        negative: settings.getInt("narinfo-cache-negative-ttl"),
      },
      onWarning: warn,
      queryJobs: DEFAULT_QUERY_JOBS,
    });
    // Many NARs are decoded one after another: their codec workers are started once, now, while
    // the narinfos are asked for.
    const workers = holdCodecWorkers({ start: true });
    return {
      substituter,
      [Symbol.dispose]: () => {
        workers[Symbol.dispose]();
        diskCache.close();
      },
    };
  } catch (e) {
    diskCache.close();
    throw e;
  }
}

const DEFAULT_QUERY_JOBS = 32;

/** The keys of `trusted-public-keys`. */
export function readTrustedKeys(config: Config): PublicKey[] {
  return config.settings.getList("trusted-public-keys").map((text) => {
    try {
      return parsePublicKey(text);
    } catch (e) {
      throw new SyntaxError(`Setting 'trusted-public-keys': ${(e as Error).message}`);
    }
  });
}

/** The keys in the files of `secret-key-files` and `extraFiles`. */
export function readSecretKeys(config: Config, extraFiles: readonly string[] = []): SecretKey[] {
  const files = [...config.settings.getList("secret-key-files"), ...extraFiles];
  return files.map(readSecretKeyFile);
}

/** The secret key in `file`. */
export function readSecretKeyFile(file: string): SecretKey {
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (e) {
    throw new Error(`Cannot read secret key file '${file}': ${(e as Error).message}`);
  }
  return parseSecretKey(text);
}
