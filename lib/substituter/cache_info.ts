/**
 * `nix-cache-info`: a binary cache's `Key: value` header (StoreDir, WantMassQuery, Priority).
 * Nix reads it leniently (values trimmed, unknown keys and lines without ':' skipped); kiln does
 * the same but refuses a value it would misread, such as a Priority that is not an integer.
 */

/** What a cache says about itself; a field it does not give is absent. */
export interface CacheInfo {
  /** The store the cache's paths belong to; a client with another store dir must not use it. */
  storeDir?: string;
  /** Whether clients may query it for many paths at once (`WantMassQuery: 1`). */
  wantMassQuery?: boolean;
  /** Lower is preferred; cache.nixos.org says 40. */
  priority?: number;
}

/** Parses the file's text; `whence` names it in errors. */
export function parseCacheInfo(text: string, whence: string): CacheInfo {
  const info: CacheInfo = {};
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    const bad = (why: string) =>
      new SyntaxError(`Binary cache info '${whence}' has ${name} '${value}', which ${why}`);
    switch (name) {
      case "StoreDir":
        if (!value.startsWith("/")) throw bad("is not an absolute path");
        info.storeDir = value;
        break;
      case "WantMassQuery":
        info.wantMassQuery = value === "1";
        break;
      case "Priority":
        if (!/^-?[0-9]+$/.test(value) || !Number.isSafeInteger(Number(value))) {
          throw bad("is not an integer");
        }
        info.priority = Number(value);
        break;
      default: // keys for other clients
    }
  }
  return info;
}

/** The file's text: the given fields in Nix's order, one `Key: value` line each. */
export function printCacheInfo(info: CacheInfo): string {
  let text = "";
  if (info.storeDir !== undefined) text += `StoreDir: ${info.storeDir}\n`;
  if (info.wantMassQuery !== undefined) text += `WantMassQuery: ${info.wantMassQuery ? 1 : 0}\n`;
  if (info.priority !== undefined) text += `Priority: ${info.priority}\n`;
  return text;
}
