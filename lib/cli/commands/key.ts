/** `kiln key generate|public`: binary cache signing keys in Nix's text forms. */

import {
  generateKeyPair,
  printPublicKey,
  printSecretKey,
  publicKeyOf,
} from "../../substituter/mod.ts";
import { parseCommandArgs, runSubcommand, UsageError } from "../args.ts";
import { type Command, printLines } from "../command.ts";
import { readSecretKeyFile } from "../substituters.ts";

const USAGE = `Usage:
  kiln key generate NAME --secret-file SK --public-file PK
      make a new Ed25519 key pair named NAME (e.g. cache.example.org-1) and write the secret
      key to SK (mode 0600; it must not exist yet) and the public key to PK, without a
      trailing newline, as 'nix-store --generate-binary-cache-key NAME SK PK' does
  kiln key public --secret-file SK
      print the public key of the secret key in SK`;

export const keyCommand: Command = {
  usage: USAGE,
  run: (args) => runSubcommand("key", args, { generate, public: showPublic }),
};

function generate(args: string[]): number {
  const { values, positionals } = parseCommandArgs(args, {
    "secret-file": { type: "string" },
    "public-file": { type: "string" },
  });
  if (positionals.length !== 1) throw new UsageError("kiln key generate needs exactly one NAME");
  const secretFile = values["secret-file"];
  const publicFile = values["public-file"];
  if (secretFile === undefined || publicFile === undefined) {
    throw new UsageError("kiln key generate needs --secret-file and --public-file");
  }
  const { secretKey, publicKey } = generateKeyPair(positionals[0]);
  const secret = createNewFile(secretFile, 0o600);
  let pub: Deno.FsFile;
  try {
    pub = createNewFile(publicFile, 0o644);
  } catch (e) {
    secret.close();
    Deno.removeSync(secretFile);
    throw e;
  }
  writeAndClose(secret, printSecretKey(secretKey));
  writeAndClose(pub, printPublicKey(publicKey));
  return 0;
}

function showPublic(args: string[]): number {
  const { values, positionals } = parseCommandArgs(args, { "secret-file": { type: "string" } });
  if (positionals.length > 0) throw new UsageError("kiln key public takes no arguments");
  const secretFile = values["secret-file"];
  if (secretFile === undefined) throw new UsageError("kiln key public needs --secret-file");
  printLines([printPublicKey(publicKeyOf(readSecretKeyFile(secretFile)))]);
  return 0;
}

/**
 * Creates `path` with `mode` from the start (a secret key is never readable by others, even
 * briefly); refuses to replace an existing file, whose mode kiln could not vouch for.
 */
function createNewFile(path: string, mode: number): Deno.FsFile {
  try {
    return Deno.openSync(path, { write: true, createNew: true, mode });
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      throw new Error(`Key file '${path}' already exists; remove it or choose another name`);
    }
    throw new Error(`Cannot create key file '${path}': ${(e as Error).message}`);
  }
}

function writeAndClose(file: Deno.FsFile, text: string): void {
  try {
    const bytes = new TextEncoder().encode(text);
    let off = 0;
    while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
  } finally {
    file.close();
  }
}
