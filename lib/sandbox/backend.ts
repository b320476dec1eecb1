/**
 * Choosing the sandbox's backend: bubblewrap where it works, else the kernel's namespaces through
 * util-linux `unshare` (`namespaces.ts`); `sandbox-backend` may name one.
 */

import { probeBwrap, type SandboxBackend } from "./bwrap.ts";
import { probeNamespaces } from "./namespaces.ts";

/** The `sandbox-backend` setting: a backend, or `auto` (bwrap, else namespaces). */
export type SandboxBackendChoice = "auto" | SandboxBackend;

/** A probe's answer: the backend that works, or why none does. */
export type SandboxProbe =
  | {
    ok: true;
    backend: SandboxBackend;
    /** Why bwrap was passed over, when `auto` chose the namespaces. */
    bwrapProblem?: string;
  }
  | { ok: false; reason: string };

/** Parses the `sandbox-backend` setting. */
export function parseSandboxBackend(text: string): SandboxBackendChoice {
  if (text === "auto" || text === "bwrap" || text === "namespaces") return text;
  throw new TypeError(
    `Setting 'sandbox-backend' has value '${text}', expected auto, bwrap or namespaces`,
  );
}

/** Which backend sandboxed builds use here (`backend` default `auto`): one or two probes. */
export async function probeSandbox(
  options: { backend?: SandboxBackendChoice } = {},
): Promise<SandboxProbe> {
  const choice = options.backend ?? "auto";
  let bwrapProblem: string | undefined;
  if (choice !== "namespaces") {
    const bwrap = await probeBwrap();
    if (bwrap.ok) return { ok: true, backend: "bwrap" };
    if (choice === "bwrap") return bwrap;
    bwrapProblem = bwrap.reason;
  }
  const namespaces = await probeNamespaces();
  if (namespaces.ok) return { ok: true, backend: "namespaces", bwrapProblem };
  const reason = `user namespaces: ${namespaces.reason}`;
  return { ok: false, reason: bwrapProblem === undefined ? reason : `${bwrapProblem}; ${reason}` };
}
