import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { hashBytes } from "../../lib/hashing/mod.ts";
import { MetadataDb, type PathInfo } from "../../lib/store/metadata_db.ts";

const STORE = "/nix/store";
const A = `${STORE}/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a`;
const B = `${STORE}/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b`;
const C = `${STORE}/cccccccccccccccccccccccccccccccc-c`;
const D = `${STORE}/dddddddddddddddddddddddddddddddd-d`;
const DRV = `${STORE}/ffffffffffffffffffffffffffffffff-c.drv`;

function info(path: string, references: string[] = [], extra: Partial<PathInfo> = {}): PathInfo {
  return {
    path,
    narHash: hashBytes("sha256", path),
    narSize: 100,
    references,
    registrationTime: 1700000000,
    signatures: [],
    ultimate: false,
    ...extra,
  };
}

function withDb(fn: (db: MetadataDb, file: string) => void): void {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-db-" });
  const file = join(dir, "db.sqlite");
  const db = MetadataDb.open(file, { createSchema: true });
  try {
    fn(db, file);
  } finally {
    db.close();
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("MetadataDb.registerValidPaths() round-trips every field", () => {
  withDb((db) => {
    const full = info(C, [A, B, C], {
      deriver: DRV,
      signatures: ["k1:AAAA", "k2:BBBB"],
      ca: "fixed:r:sha256:1xmr8jicvzszfzpz46g37mlpvbzjl2wpwvl2b05psipssyp1sm8h",
      ultimate: true,
    });
    db.registerValidPaths([info(A), info(B), full]);
    assertEquals(db.queryPathInfo(C), full);
    assertEquals(db.queryPathInfo(A), info(A));
    assert(db.isValidPath(B));
    assert(!db.isValidPath(D));
    assertEquals(db.queryPathInfo(D), undefined);
  });
});

Deno.test("MetadataDb stores column values as Nix does", () => {
  withDb((db, file) => {
    db.registerValidPaths([
      info(A, [], { narSize: 0 }),
      info(B, [A], { signatures: ["k:x", "k:y"], ca: "text:sha256:abc", deriver: DRV }),
    ]);
    const raw = new DatabaseSync(file);
    try {
      const rows = raw.prepare(
        "select path, hash, deriver, narSize, ultimate, sigs, ca from ValidPaths order by path",
      ).all();
      assertEquals(rows.map((r) => ({ ...r })), [
        {
          path: A,
          hash: `sha256:${hashBytes("sha256", A).toString("base16")}`,
          deriver: null,
          narSize: null,
          ultimate: null,
          sigs: null,
          ca: null,
        },
        {
          path: B,
          hash: `sha256:${hashBytes("sha256", B).toString("base16")}`,
          deriver: DRV,
          narSize: 100,
          ultimate: null,
          sigs: "k:x k:y",
          ca: "text:sha256:abc",
        },
      ]);
    } finally {
      raw.close();
    }
  });
});

Deno.test("MetadataDb.registerValidPaths() rejects a reference that is not valid, atomically", () => {
  withDb((db) => {
    assertThrows(
      () => db.registerValidPaths([info(A), info(B, [D])]),
      RangeError,
      `Cannot register '${B}': its reference '${D}' is not valid`,
    );
    assert(!db.isValidPath(A), "the whole transaction is rolled back");
  });
});

Deno.test("MetadataDb.registerValidPaths() updates an already valid path", () => {
  withDb((db) => {
    db.registerValidPaths([info(A)]);
    db.registerValidPaths([info(A, [], { narSize: 7, signatures: ["k:s"], registrationTime: 5 })]);
    const got = db.queryPathInfo(A)!;
    assertEquals(got.narSize, 7);
    assertEquals(got.signatures, ["k:s"]);
    assertEquals(got.registrationTime, 1700000000, "registration time is kept, as in Nix");
  });
});

Deno.test("MetadataDb.computeClosure() follows references transitively and sorts", () => {
  withDb((db) => {
    db.registerValidPaths([info(A, [A]), info(B, [A]), info(C, [B]), info(D)]);
    assertEquals(db.computeClosure([C]), [A, B, C]);
    assertEquals(db.computeClosure([D, A]), [A, D]);
    assertEquals(db.computeClosure([]), []);
    assertThrows(() => db.computeClosure([DRV]), RangeError, `Path '${DRV}' is not valid`);
  });
});

Deno.test("MetadataDb.queryReferrers() lists the paths that refer to a path", () => {
  withDb((db) => {
    db.registerValidPaths([info(A), info(B, [A]), info(C, [A, B])]);
    assertEquals(db.queryReferrers(A), [B, C]);
    assertEquals(db.queryReferrers(C), []);
  });
});

Deno.test("MetadataDb.queryDerivationOutputs() returns the outputs registered with a .drv", () => {
  withDb((db) => {
    db.registerValidPaths([info(A), info(DRV, [A])], {
      derivationOutputs: new Map([[DRV, new Map([["out", C], ["dev", D]])]]),
    });
    assertEquals(db.queryDerivationOutputs(DRV), new Map([["dev", D], ["out", C]]));
    assertEquals(db.queryDerivationOutputs(A), new Map());
    assertThrows(() => db.queryDerivationOutputs(B), RangeError, "is not valid");
  });
});

Deno.test("MetadataDb.invalidatePath() cascades to Refs and DerivationOutputs", () => {
  withDb((db, file) => {
    db.registerValidPaths([info(A), info(DRV, [A, DRV])], {
      derivationOutputs: new Map([[DRV, new Map([["out", C]])]]),
    });
    assertThrows(() => db.invalidatePath(A), RangeError, `still referenced by '${DRV}'`);
    db.invalidatePath(DRV); // a self-reference does not block deletion (the DeleteSelfRefs trigger)
    assert(!db.isValidPath(DRV));
    const raw = new DatabaseSync(file);
    try {
      assertEquals(raw.prepare("select count(*) n from Refs").get()?.n, 0);
      assertEquals(raw.prepare("select count(*) n from DerivationOutputs").get()?.n, 0);
    } finally {
      raw.close();
    }
    db.invalidatePath(A);
    assert(!db.isValidPath(A));
  });
});

Deno.test("MetadataDb.open() uses WAL and Nix's tables, indexes and trigger", () => {
  withDb((_db, file) => {
    const raw = new DatabaseSync(file);
    try {
      assertEquals(raw.prepare("pragma journal_mode").get()?.journal_mode, "wal");
      const names = raw.prepare("select name from sqlite_master where name not like 'sqlite_%'")
        .all().map((r) => r.name).sort();
      assertEquals(names, [
        "DeleteSelfRefs",
        "DerivationOutputs",
        "IndexDerivationOutputs",
        "IndexReference",
        "IndexReferrer",
        "Refs",
        "ValidPaths",
      ]);
    } finally {
      raw.close();
    }
  });
});
