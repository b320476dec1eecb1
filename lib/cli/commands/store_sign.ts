/** `kiln store sign`: add signatures to valid paths, as `nix store sign --key-file`. */

import { parseStorePath } from "../../hashing/mod.ts";
import { LocalStore, type PathInfo } from "../../store/mod.ts";
import { fingerprintPath, signFingerprint } from "../../substituter/mod.ts";
import { parseCommandArgs, UsageError } from "../args.ts";
import { readSecretKeyFile } from "../substituters.ts";

/** Usage lines for the `store` command's text. */
export const STORE_SIGN_USAGE = `  kiln store sign --key-file SK [--recursive] PATH...
      sign each valid PATH (with --recursive its closure) with the secret key in file SK and
      record the signature in the store, as 'nix store sign -k SK'`;

/** Runs `kiln store sign ARGS`. */
export function signPaths(args: string[]): number {
  const { values, positionals, config } = parseCommandArgs(args, {
    "key-file": { type: "string", short: "k" },
    recursive: { type: "boolean", short: "r" },
  });
  if (values["key-file"] === undefined) throw new UsageError("kiln store sign needs --key-file");
  if (positionals.length === 0) throw new UsageError("kiln store sign needs at least one PATH");
  const key = readSecretKeyFile(values["key-file"]);
  const store = LocalStore.open(config());
  try {
    for (const path of positionals) parseStorePath(store.storeDir, path);
    const paths = values.recursive ? store.computeClosure(positionals) : [...new Set(positionals)];
    const updated: PathInfo[] = [];
    for (const path of paths) {
      const info = store.queryPathInfo(path);
      if (info === undefined) throw new RangeError(`Path '${path}' is not valid`);
      const signature = signFingerprint(key, fingerprintPath(path, info));
      if (info.signatures.includes(signature)) continue;
      updated.push({ ...info, signatures: [...info.signatures, signature].sort() });
    }
    store.registerValidPaths(updated);
    return 0;
  } finally {
    store.close();
  }
}
