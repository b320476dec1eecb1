/** The shape of a `kiln` verb and the few ways it talks to the terminal. */

/** A top-level verb (`kiln hash ...`): takes its arguments, returns the exit status. */
export interface Command {
  /** Full usage text for `kiln VERB --help`. */
  usage: string;
  run(args: string[]): Promise<number>;
}

/** A verb as `kiln --help` lists it; its module is loaded only to run it. */
export interface CommandEntry {
  name: string;
  /** One line for `kiln --help`. */
  summary: string;
  load(): Promise<Command>;
}

const encoder = new TextEncoder();

function writeAll(file: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
}

/** Writes results to stdout, one per line. */
export function printLines(lines: Iterable<string>): void {
  let text = "";
  for (const line of lines) text += line + "\n";
  writeAll(Deno.stdout, encoder.encode(text));
}

/** Writes a JSON value to stdout on one line. */
export function printJson(value: unknown): void {
  printLines([JSON.stringify(value)]);
}

/** Writes progress, warnings and logs to stderr. */
export function printStderr(text: string): void {
  writeStderr(text.endsWith("\n") ? text : text + "\n");
}

/** Writes `text` to stderr as it is (a status line's escape codes). */
export function writeStderr(text: string): void {
  writeAll(Deno.stderr, encoder.encode(text));
}

/** `warning: ...` on stderr, as Nix prints it. */
export function warn(message: string): void {
  printStderr(`warning: ${message}`);
}
