/**
 * The store's metadata in SQLite, laid out as Nix lays out `db.sqlite` (schema 10): ValidPaths,
 * Refs and DerivationOutputs with Nix's column values. The only SQLite user in kiln. Several kiln
 * processes may share one database: writes take `BEGIN IMMEDIATE`, and SQLITE_BUSY is waited out
 * (busy_timeout) and retried, never reported.
 */

import { DatabaseSync, type StatementSync } from "node:sqlite";
import { type Hash, parseHash } from "../hashing/mod.ts";

/** What the store knows about a valid path. */
export interface PathInfo {
  path: string;
  /** sha256 of the path's NAR serialisation. */
  narHash: Hash;
  narSize: number;
  /** Full store paths, sorted; may include `path` itself. */
  references: string[];
  deriver?: string;
  /** Seconds since the epoch. */
  registrationTime: number;
  signatures: string[];
  /** Content address as Nix renders it (`fixed:r:sha256:<nix32>`, `text:sha256:...`). */
  ca?: string;
  /** Whether this store built the path itself (rather than trusting a substitute). */
  ultimate: boolean;
}

/** Derivation path -> output name -> output path, recorded in DerivationOutputs. */
export type DerivationOutputsMap = Map<string, Map<string, string>>;

const SCHEMA = `
create table if not exists ValidPaths (
    id               integer primary key autoincrement not null,
    path             text unique not null,
    hash             text not null,
    registrationTime integer not null,
    deriver          text,
    narSize          integer,
    ultimate         integer,
    sigs             text,
    ca               text
);
create table if not exists Refs (
    referrer  integer not null,
    reference integer not null,
    primary key (referrer, reference),
    foreign key (referrer) references ValidPaths(id) on delete cascade,
    foreign key (reference) references ValidPaths(id) on delete restrict
);
create index if not exists IndexReferrer on Refs(referrer);
create index if not exists IndexReference on Refs(reference);
create trigger if not exists DeleteSelfRefs before delete on ValidPaths
  begin
    delete from Refs where referrer = old.id and reference = old.id;
  end;
create table if not exists DerivationOutputs (
    drv  integer not null,
    id   text not null,
    path text not null,
    primary key (drv, id),
    foreign key (drv) references ValidPaths(id) on delete cascade
);
create index if not exists IndexDerivationOutputs on DerivationOutputs(path);
`;

const BUILD_TIMES_SCHEMA = `
create table if not exists BuildTimes (
    name text primary key not null,
    ms   integer not null
);
`;

/** Milliseconds SQLite itself waits for a lock before a statement reports SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 10_000;

interface ValidPathRow {
  id: number;
  path: string;
  hash: string;
  registrationTime: number;
  deriver: string | null;
  narSize: number | null;
  ultimate: number | null;
  sigs: string | null;
  ca: string | null;
}

/** An open metadata database (`<stateDir>/db/db.sqlite`). */
export class MetadataDb {
  readonly #db: DatabaseSync;
  readonly #stmts: ReturnType<typeof prepareStatements>;

  private constructor(db: DatabaseSync) {
    this.#db = db;
    this.#stmts = prepareStatements(db);
  }

  /**
   * Opens (creating when absent) the database file `file`, sets Nix's pragmas and makes sure the
   * tables exist. `createSchema` false skips the `create ... if not exists` transaction.
   */
  static open(file: string, options: { createSchema: boolean }): MetadataDb {
    const db = new DatabaseSync(file);
    try {
      db.exec(`pragma busy_timeout = ${BUSY_TIMEOUT_MS}`);
      retryBusy(() =>
        db.exec(
          "pragma journal_mode = wal; pragma synchronous = normal; pragma foreign_keys = on;" +
            " pragma wal_autocheckpoint = 40000",
        )
      );
      if (options.createSchema) writeTransaction(db, () => db.exec(SCHEMA));
      return new MetadataDb(db);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  isValidPath(path: string): boolean {
    return retryBusy(() => this.#stmts.queryId.get(path)) !== undefined;
  }

  queryPathInfo(path: string): PathInfo | undefined {
    return retryBusy(() => {
      const row = this.#stmts.queryPathInfo.get(path) as ValidPathRow | undefined;
      if (row === undefined) return undefined;
      const references = (this.#stmts.queryReferences.all(row.id) as { path: string }[])
        .map((r) => r.path);
      return rowToPathInfo(row, references);
    });
  }

  /** Every valid path, sorted. */
  queryAllValidPaths(): string[] {
    const rows = retryBusy(() => this.#stmts.queryAllValidPaths.all()) as { path: string }[];
    return rows.map((r) => r.path);
  }

  /** Paths whose references include `path` (itself too, when it refers to itself), sorted. */
  queryReferrers(path: string): string[] {
    return retryBusy(() => {
      const id = this.#requireId(path);
      return (this.#stmts.queryReferrers.all(id) as { path: string }[]).map((r) => r.path);
    });
  }

  /** The valid path whose hash part is `hashPart` (`<storeDir>/<hashPart>-...`), if any. */
  queryPathFromHashPart(storeDir: string, hashPart: string): string | undefined {
    const prefix = `${storeDir}/${hashPart}-`;
    const row = retryBusy(() => this.#stmts.queryPathFromPrefix.get(prefix)) as
      | { path: string }
      | undefined;
    return row?.path.startsWith(prefix) ? row.path : undefined;
  }

  /** Output name -> output path recorded for derivation `drvPath`; throws when it is not valid. */
  queryDerivationOutputs(drvPath: string): Map<string, string> {
    return retryBusy(() => {
      const id = this.#requireId(drvPath);
      const rows = this.#stmts.queryDerivationOutputs.all(id) as { id: string; path: string }[];
      return new Map(rows.map((r) => [r.id, r.path]));
    });
  }

  /** The valid derivations that record `path` as one of their outputs, sorted. */
  queryValidDerivers(path: string): string[] {
    const rows = retryBusy(() => this.#stmts.queryValidDerivers.all(path)) as { path: string }[];
    return rows.map((r) => r.path);
  }

  /** `paths` and everything they reference, directly or not, sorted; throws on an invalid one. */
  computeClosure(paths: Iterable<string>): string[] {
    const roots = [...new Set(paths)];
    return retryBusy(() => {
      for (const path of roots) this.#requireId(path);
      const rows = this.#stmts.queryClosure.all(JSON.stringify(roots)) as { path: string }[];
      return rows.map((r) => r.path);
    });
  }

  /**
   * Registers `infos` in one transaction: new paths are inserted, already valid ones get their
   * hash, size, signatures and content address updated (as Nix's updatePathInfo). Every reference
   * must be valid or among `infos`. `derivationOutputs` fills DerivationOutputs for `.drv` paths.
   */
  registerValidPaths(
    infos: readonly PathInfo[],
    options: { derivationOutputs?: DerivationOutputsMap } = {},
  ): void {
    writeTransaction(this.#db, () => {
      const s = this.#stmts;
      for (const info of infos) {
        const sigs = info.signatures.length > 0 ? info.signatures.join(" ") : null;
        const narSize = info.narSize === 0 ? null : info.narSize;
        const ultimate = info.ultimate ? 1 : null;
        const hash = info.narHash.toBase16Prefixed();
        if (s.queryId.get(info.path) !== undefined) {
          s.updatePathInfo.run(narSize, hash, ultimate, sigs, info.ca ?? null, info.path);
        } else {
          s.insertPath.run(
            info.path,
            hash,
            info.registrationTime,
            info.deriver ?? null,
            narSize,
            ultimate,
            sigs,
            info.ca ?? null,
          );
        }
      }
      for (const info of infos) {
        const referrer = this.#requireId(info.path);
        for (const reference of info.references) {
          const referenceId = this.#queryId(reference);
          if (referenceId === undefined) {
            throw new RangeError(
              `Cannot register '${info.path}': its reference '${reference}' is not valid`,
            );
          }
          s.insertReference.run(referrer, referenceId);
        }
        for (const [output, path] of options.derivationOutputs?.get(info.path) ?? []) {
          s.insertDerivationOutput.run(referrer, output, path);
        }
      }
    });
  }

  /** Removes `path` from the valid set; throws when another valid path still refers to it. */
  invalidatePath(path: string): void {
    this.#requireId(path);
    this.invalidatePaths([path]);
  }

  /**
   * Removes `paths` from the valid set in one transaction, in the order given (referrers first);
   * throws, changing nothing, when a valid path outside `paths` still refers to one of them.
   */
  invalidatePaths(paths: readonly string[]): void {
    writeTransaction(this.#db, () => {
      for (const path of paths) {
        const id = this.#queryId(path);
        if (id === undefined) continue;
        const referrer = (this.#stmts.queryReferrers.all(id) as { path: string }[])
          .find((r) => r.path !== path);
        if (referrer !== undefined) {
          throw new RangeError(
            `Cannot invalidate '${path}': it is still referenced by '${referrer.path}'`,
          );
        }
        this.#stmts.deletePath.run(id);
      }
    });
  }

  /**
   * The last recorded duration (milliseconds) of a build of each of `names` that has one: kiln's
   * own table (Nix has none), made when first written.
   */
  queryBuildTimes(names: readonly string[]): Map<string, number> {
    const times = new Map<string, number>();
    if (!this.#hasBuildTimes()) return times;
    const rows = this.#db.prepare(
      "select name, ms from BuildTimes where name in (select value from json_each(?))",
    ).all(JSON.stringify(names)) as { name: string; ms: number }[];
    for (const row of rows) times.set(row.name, row.ms);
    return times;
  }

  /** Records how long builds took, by derivation name (milliseconds), in one transaction. */
  recordBuildTimes(times: ReadonlyMap<string, number>): void {
    if (times.size === 0) return;
    writeTransaction(this.#db, () => {
      this.#db.exec(BUILD_TIMES_SCHEMA);
      const insert = this.#db.prepare("insert or replace into BuildTimes (name, ms) values (?, ?)");
      for (const [name, ms] of times) insert.run(name, Math.round(ms));
    });
  }

  #hasBuildTimes(): boolean {
    return this.#db.prepare(
      "select 1 from sqlite_master where type = 'table' and name = 'BuildTimes'",
    ).get() !== undefined;
  }

  close(): void {
    this.#db.close();
  }

  #queryId(path: string): number | undefined {
    return (this.#stmts.queryId.get(path) as { id: number } | undefined)?.id;
  }

  #requireId(path: string): number {
    const id = this.#queryId(path);
    if (id === undefined) throw new RangeError(`Path '${path}' is not valid`);
    return id;
  }
}

function prepareStatements(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    queryId: p("select id from ValidPaths where path = ?"),
    queryAllValidPaths: p("select path from ValidPaths order by path"),
    queryPathFromPrefix: p("select path from ValidPaths where path >= ? limit 1"),
    queryPathInfo: p(
      "select id, path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca" +
        " from ValidPaths where path = ?",
    ),
    queryReferences: p(
      "select v.path from Refs r join ValidPaths v on r.reference = v.id" +
        " where r.referrer = ? order by v.path",
    ),
    queryReferrers: p(
      "select v.path from Refs r join ValidPaths v on r.referrer = v.id" +
        " where r.reference = ? order by v.path",
    ),
    queryDerivationOutputs: p("select id, path from DerivationOutputs where drv = ? order by id"),
    queryValidDerivers: p(
      "select v.path from DerivationOutputs d join ValidPaths v on d.drv = v.id" +
        " where d.path = ? order by v.path",
    ),
    queryClosure: p(
      `with recursive closure(id) as (
         select id from ValidPaths where path in (select value from json_each(?))
         union
         select r.reference from Refs r join closure c on r.referrer = c.id
       )
       select v.path from ValidPaths v join closure c on v.id = c.id order by v.path`,
    ),
    insertPath: p(
      "insert into ValidPaths (path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca)" +
        " values (?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    updatePathInfo: p(
      "update ValidPaths set narSize = ?, hash = ?, ultimate = ?, sigs = ?, ca = ? where path = ?",
    ),
    insertReference: p("insert or replace into Refs (referrer, reference) values (?, ?)"),
    insertDerivationOutput: p(
      "insert or replace into DerivationOutputs (drv, id, path) values (?, ?, ?)",
    ),
    deletePath: p("delete from ValidPaths where id = ?"),
  };
}

function rowToPathInfo(row: ValidPathRow, references: string[]): PathInfo {
  const info: PathInfo = {
    path: row.path,
    narHash: parseHash(row.hash),
    narSize: row.narSize ?? 0,
    references,
    registrationTime: row.registrationTime,
    signatures: row.sigs === null ? [] : row.sigs.split(" ").filter((s) => s !== ""),
    ultimate: row.ultimate !== null && row.ultimate !== 0,
  };
  if (row.deriver !== null) info.deriver = row.deriver;
  if (row.ca !== null) info.ca = row.ca;
  return info;
}

/** Runs `fn` inside `BEGIN IMMEDIATE ... COMMIT`, rolling back on error, retrying when busy. */
function writeTransaction<T>(db: DatabaseSync, fn: () => T): T {
  return retryBusy(() => {
    db.exec("begin immediate");
    try {
      const result = fn();
      db.exec("commit");
      return result;
    } catch (e) {
      if (db.isTransaction) db.exec("rollback");
      throw e;
    }
  });
}

/**
 * Runs `fn`, running it again whenever SQLite reports the database busy or locked. busy_timeout
 * already waits inside SQLite; this covers the cases where SQLite gives up at once (WAL recovery,
 * a lock held past the timeout), with a short growing pause between attempts.
 */
function retryBusy<T>(fn: () => T): T {
  for (let attempt = 0;; attempt++) {
    try {
      return fn();
    } catch (e) {
      if (!isBusy(e)) throw e;
      sleepSync(Math.min(2 ** attempt, 100) + Math.random() * 10);
    }
  }
}

function isBusy(e: unknown): boolean {
  return e instanceof Error && /database (table )?is locked|database is busy/i.test(e.message);
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}
