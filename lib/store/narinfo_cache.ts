/**
 * The narinfo disk cache, as Nix's `binary-cache-v6.sqlite`: what each binary cache answered for
 * a hash part, positive (the narinfo text) or negative (no such path), with the time it was asked,
 * so later runs need not ask again until a TTL has passed. A separate SQLite file beside the
 * store's database (`<stateDir>/binary-cache-v1.sqlite`): it holds only hints, never store
 * metadata, and losing it costs nothing but queries.
 */

import { DatabaseSync, type StatementSync } from "node:sqlite";
import { join, resolve } from "node:path";

const SCHEMA = `
create table if not exists NarInfos (
    cache     text not null,
    hashPart  text not null,
    timestamp integer not null,
    narinfo   text,
    primary key (cache, hashPart)
);
`;

/** What the disk cache remembers of one query; `narinfo` undefined when the cache had none. */
export interface CachedNarInfo {
  narinfo?: string;
}

/** Seconds an answer stays usable (Nix: `narinfo-cache-positive-ttl`, `...-negative-ttl`). */
export interface NarInfoTtls {
  positive: number;
  negative: number;
}

/** Nix's defaults: a month for a narinfo, an hour for "not there". */
export const DEFAULT_NARINFO_TTLS: NarInfoTtls = { positive: 2592000, negative: 3600 };

/** An open narinfo disk cache. */
export class NarInfoDiskCache {
  readonly #db: DatabaseSync;
  readonly #lookup: StatementSync;
  readonly #upsert: StatementSync;

  private constructor(db: DatabaseSync) {
    this.#db = db;
    this.#lookup = db.prepare(
      "select timestamp, narinfo from NarInfos where cache = ? and hashPart = ?",
    );
    this.#upsert = db.prepare(
      "insert or replace into NarInfos (cache, hashPart, timestamp, narinfo) values (?, ?, ?, ?)",
    );
  }

  /** Opens (creating) `<stateDir>/binary-cache-v1.sqlite`. */
  static open(stateDir: string): NarInfoDiskCache {
    const dir = resolve(stateDir);
    Deno.mkdirSync(dir, { recursive: true });
    const db = new DatabaseSync(join(dir, "binary-cache-v1.sqlite"));
    try {
      db.exec("pragma busy_timeout = 10000");
      db.exec("pragma journal_mode = wal; pragma synchronous = off");
      db.exec(SCHEMA);
      return new NarInfoDiskCache(db);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  /**
   * The answer `cache` gave for `hashPart`, unless it is older than its TTL; `now` in seconds.
   */
  lookup(
    cache: string,
    hashPart: string,
    options: { ttls: NarInfoTtls; now: number },
  ): CachedNarInfo | undefined {
    const row = this.#lookup.get(cache, hashPart) as
      | { timestamp: number; narinfo: string | null }
      | undefined;
    if (row === undefined) return undefined;
    const ttl = row.narinfo === null ? options.ttls.negative : options.ttls.positive;
    if (row.timestamp + ttl < options.now) return undefined;
    return row.narinfo === null ? {} : { narinfo: row.narinfo };
  }

  /** Records `cache`'s answer for `hashPart` at `now` (seconds). */
  insert(cache: string, hashPart: string, answer: CachedNarInfo, now: number): void {
    this.#upsert.run(cache, hashPart, now, answer.narinfo ?? null);
  }

  close(): void {
    this.#db.close();
  }
}
