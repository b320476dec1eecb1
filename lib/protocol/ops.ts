/** Operation numbers of the worker protocol and commands of the serve protocol, as in Nix 2.8. */

/** `WorkerProto::Op` (2.8's list; 47 AddPermRoot came with 1.36). */
export const WorkerOp = {
  IsValidPath: 1,
  HasSubstitutes: 3,
  QueryReferrers: 6,
  AddToStore: 7,
  AddTextToStore: 8,
  BuildPaths: 9,
  EnsurePath: 10,
  AddTempRoot: 11,
  AddIndirectRoot: 12,
  SyncWithGC: 13,
  FindRoots: 14,
  SetOptions: 19,
  CollectGarbage: 20,
  QuerySubstitutablePathInfo: 21,
  QueryAllValidPaths: 23,
  QueryPathInfo: 26,
  QueryPathFromHashPart: 29,
  QuerySubstitutablePathInfos: 30,
  QueryValidPaths: 31,
  QuerySubstitutablePaths: 32,
  QueryValidDerivers: 33,
  OptimiseStore: 34,
  VerifyStore: 35,
  BuildDerivation: 36,
  AddSignatures: 37,
  NarFromPath: 38,
  AddToStoreNar: 39,
  QueryMissing: 40,
  QueryDerivationOutputMap: 41,
  RegisterDrvOutput: 42,
  QueryRealisation: 43,
  AddMultipleToStore: 44,
  AddBuildLog: 45,
  BuildPathsWithResults: 46,
} as const;
export type WorkerOp = typeof WorkerOp[keyof typeof WorkerOp];

/** Obsolete op numbers that 2.8's daemon refuses. */
export const OBSOLETE_WORKER_OPS: readonly number[] = [4, 5, 16, 18, 22, 27, 28];

/** The name of a worker op number, or undefined when 2.8 has no such op. */
export function workerOpName(op: number): keyof typeof WorkerOp | undefined {
  return (Object.keys(WorkerOp) as (keyof typeof WorkerOp)[]).find((k) => WorkerOp[k] === op);
}

/** `ServeProto::Command`. */
export const ServeCommand = {
  QueryValidPaths: 1,
  QueryPathInfos: 2,
  DumpStorePath: 3,
  ImportPaths: 4,
  ExportPaths: 5,
  BuildPaths: 6,
  QueryClosure: 7,
  BuildDerivation: 8,
  AddToStoreNar: 9,
} as const;
export type ServeCommand = typeof ServeCommand[keyof typeof ServeCommand];
