/**
 * The operations that build: BuildPaths and BuildPathsWithResults through one `realise()` run
 * each, its events rendered onto the client's stderr channel as Nix's daemon renders its logger's
 * (activities, their results, log messages); and QueryMissing, which nix-build asks first.
 */

import { hashDerivationModulo } from "../derivation/mod.ts";
import {
  type BuildResult,
  type BuildTarget,
  messageText,
  nixStatusOf,
  planBuild,
  queryMissing,
  readDerivation,
  realise,
  type RunEvent,
} from "../scheduler/mod.ts";
import { unreachable } from "../sys/mod.ts";
import {
  type BuildMode,
  type DerivedPath,
  type KeyedBuildResult,
  type LogField,
  protocolMinor,
  readBuildMode,
  readDerivedPath,
  type Realisation,
  WorkerOp,
  writeKeyedBuildResult,
  writeMissingReply,
} from "../protocol/mod.ts";
import type { Outgoing } from "./_channel.ts";
import type { OpHandler, Session } from "./_session.ts";

/** Nix's `ActivityType` and `ResultType` numbers and verbosity levels (libutil/logging.hh). */
const ACTIVITY_TYPES = { copyPaths: 103, builds: 104, build: 105, substitute: 108 } as const;
const RESULT_TYPES = { buildLogLine: 101, progress: 105 } as const;
const LEVELS = { error: 0, warn: 1, info: 3, talkative: 4 } as const;

/** Renders a run's events as Nix's TunnelLogger sends its logger's calls. */
function renderEvent(out: Outgoing, verbosity: number, event: RunEvent): void {
  switch (event.type) {
    case "start": {
      const fields: LogField[] = event.activity === "build"
        ? [event.path ?? "", "", 1, 1]
        : event.activity === "substitute"
        ? [event.path ?? "", ""]
        : [];
      out.stderr({
        type: "startActivity",
        id: event.id,
        level: LEVELS.info,
        activityType: ACTIVITY_TYPES[event.activity],
        text: event.text,
        fields,
        parent: event.parent,
      });
      return;
    }
    case "stop":
      out.stderr({ type: "stopActivity", id: event.id });
      return;
    case "result":
      if (event.result === "buildLogLine") {
        out.stderr({
          type: "result",
          id: event.id,
          resultType: RESULT_TYPES.buildLogLine,
          fields: [event.line],
        });
      } else if (event.result === "progress") {
        const fields = [event.done, event.expected, event.running, event.failed];
        out.stderr({ type: "result", id: event.id, resultType: RESULT_TYPES.progress, fields });
      } // an estimate is kiln's own: Nix's clients have no result type for it
      return;
    case "msg": {
      // The client prints its own plan from QueryMissing: kiln's goes at a level above info.
      const level = event.level === "info" ? LEVELS.talkative : LEVELS[event.level];
      if (level > verbosity) return;
      out.stderr({ type: "next", text: `${messageText(event)}\n` });
      return;
    }
    default:
      return unreachable(event);
  }
}

function readBuildRequest(session: Session, withMode: boolean) {
  return session.incoming.read((r) => {
    const paths = r.readList((r) => readDerivedPath(r, session.wire), "derived paths");
    const mode: BuildMode = withMode ? readBuildMode(r) : "normal";
    return { paths, mode };
  }).then((request) => {
    if (request.mode === "repair" && !session.trusted) {
      throw new Error("repairing is not allowed because you are not in 'trusted-users'");
    }
    return request;
  });
}

/** What a run ended with: its results, and the last error message, not sent yet. */
interface Built {
  results: Map<string, BuildResult>;
  /**
   * Held back, as Nix 2.8 holds a top-level goal's error to throw it: BuildPaths sends it as the
   * operation's ERROR when it is the one failure, else as a message like the others.
   */
  lastError?: string;
}

/** Sends a held error message as the others were sent. */
function sendHeld(session: Session, built: Built): void {
  if (built.lastError === undefined) return;
  const verbosity = session.settings?.verbosity ?? LEVELS.info;
  renderEvent(session.out, verbosity, { type: "msg", level: "error", text: built.lastError });
}

/** Realises the derived paths: builds what is missing, with the client's settings. */
async function build(
  session: Session,
  paths: readonly DerivedPath[],
  mode: BuildMode,
): Promise<Built> {
  const { store, options, settings, out } = session;
  const targets: BuildTarget[] = [];
  for (const path of paths) {
    if (path.type === "built") {
      const { drvPath, outputs } = path;
      targets.push(outputs === "*" ? { drvPath } : { drvPath, outputs });
    } else if (!store.isValidPath(path.path)) {
      throw new TypeError(`path '${path.path}' does not exist and cannot be created`);
    }
  }
  if (targets.length === 0) return { results: new Map() };
  const base = session.realise ?? options.realise(new Map());
  const verbosity = settings?.verbosity ?? LEVELS.info;
  const built: Built = { results: new Map() };
  await using run = realise(store, targets, {
    ...base,
    settings: settings === undefined ? base.settings : {
      ...base.settings,
      maxSilentTime: settings.maxSilentTime,
      cores: settings.buildCores || base.settings.cores,
    },
    maxJobs: settings?.maxBuildJobs ?? base.maxJobs,
    keepGoing: settings?.keepGoing ?? base.keepGoing,
    check: mode === "check",
    repair: mode === "repair",
    signal: options.signal,
    onEvent: (event) => {
      if (event.type !== "msg" || event.level !== "error") {
        return renderEvent(out, verbosity, event);
      }
      if (built.lastError !== undefined) sendHeld(session, built);
      built.lastError = event.text;
    },
  });
  // A client that hangs up mid-build (killed, Ctrl-C) cancels what it asked for.
  const watching = new AbortController();
  session.incoming.hungUp(watching.signal).then((gone) => {
    if (gone) run.cancel(new DOMException("The client hung up", "AbortError"));
  }, () => {});
  let outcome;
  try {
    outcome = await run.outcome;
  } finally {
    watching.abort();
  }
  if (outcome.status === "substitution-failed") {
    throw new TypeError("some substitutes failed; kiln's daemon does not fall back to building");
  }
  built.results = outcome.results;
  return built;
}

const buildPaths: OpHandler = async (session) => {
  const { paths, mode } = await readBuildRequest(
    session,
    protocolMinor(session.wire.version) >= 15,
  );
  const built = await build(session, paths, mode);
  const { results, lastError } = built;
  const failed = [...new Set(paths.filter((p) => p.type === "built").map((p) => p.drvPath))]
    .filter((p) => results.get(p)?.status === "failed").sort();
  const only = failed.length === 1 ? results.get(failed[0]) : undefined;
  if (only?.status === "failed" && only.message === lastError) throw new TypeError(lastError);
  sendHeld(session, built);
  if (failed.length > 0) {
    throw new TypeError(`build of ${failed.map((p) => `'${p}'`).join(", ")} failed`);
  }
  session.finish((w) => w.writeInt(1));
};

/** The realisations of a derivation's outputs, keyed as Nix keys them (`<hash modulo>!<out>`). */
function builtOutputs(session: Session, result: BuildResult): Record<string, Realisation> {
  if (result.status === "failed") return {};
  const resolve = (p: string) => readDerivation(session.store, p);
  const hashes = hashDerivationModulo(resolve(result.path), resolve).hashes;
  const outputs: Record<string, Realisation> = {};
  for (const [name, outPath] of Object.entries(result.outputs)) {
    const hash = hashes.get(name) ?? hashes.values().next().value;
    if (hash === undefined) continue;
    const id = `${hash.toString("base16", true)}!${name}`;
    outputs[id] = { id, outPath, signatures: [], dependentRealisations: {} };
  }
  return outputs;
}

function keyedResult(session: Session, path: DerivedPath, result?: BuildResult): KeyedBuildResult {
  const seconds = (ms: number) => Math.floor(ms / 1000);
  return {
    path,
    status: result === undefined ? "AlreadyValid" : nixStatusOf(result),
    errorMsg: result?.status === "failed" ? result.message : "",
    timesBuilt: result?.timesBuilt ?? 0,
    isNonDeterministic: false,
    startTime: seconds(result?.startTime ?? 0),
    stopTime: seconds(result?.stopTime ?? 0),
    builtOutputs: result === undefined ? {} : builtOutputs(session, result),
  };
}

const buildPathsWithResults: OpHandler = async (session) => {
  const { paths, mode } = await readBuildRequest(session, true);
  const built = await build(session, paths, mode);
  sendHeld(session, built);
  const { results } = built;
  const keyed = paths.map((p) =>
    keyedResult(session, p, p.type === "built" ? results.get(p.drvPath) : undefined)
  );
  session.finish((w) => w.writeList(keyed, (w, k) => writeKeyedBuildResult(w, k, session.wire)));
};

/** What would be built; paths whose `.drv` the store lacks are unknown. Nothing substitutes. */
const queryMissingOp: OpHandler = async (session) => {
  const paths = await session.incoming.read((r) =>
    r.readList((r) => readDerivedPath(r, session.wire), "derived paths")
  );
  const { store } = session;
  const unknown: string[] = [];
  const targets: BuildTarget[] = [];
  for (const path of paths) {
    const known = path.type === "built" ? path.drvPath : path.path;
    if (!store.isValidPath(known)) unknown.push(known);
    else if (path.type === "built") targets.push({ drvPath: path.drvPath });
  }
  const missing = queryMissing(planBuild(store, targets));
  session.finish((w) => writeMissingReply(w, { ...missing, unknown }));
};

export const BUILD_HANDLERS: ReadonlyMap<number, OpHandler> = new Map([
  [WorkerOp.BuildPaths, buildPaths],
  [WorkerOp.BuildPathsWithResults, buildPathsWithResults],
  [WorkerOp.QueryMissing, queryMissingOp],
]);
