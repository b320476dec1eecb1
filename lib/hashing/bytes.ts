/** Byte-array helpers that the layers above share, and Nix strings to and from bytes. */

/** The chunks joined into one new array (`size`: their total length, when known). */
export function concatBytes(
  chunks: readonly Uint8Array[],
  size = chunks.reduce((n, c) => n + c.length, 0),
): Uint8Array<ArrayBuffer> {
  const all = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.length;
  }
  return all;
}

/*
 * Nix strings as JavaScript strings without loss. Nix strings are bytes, so a derivation, an
 * argument or a variable may hold bytes that are not UTF-8 (`builtins.substring` can cut a
 * character in half). Such a byte `b` is kept as the lone surrogate U+DC00+b (Python's
 * "surrogateescape"), and encoded back to `b`.
 */

const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }); // keep a BOM: it is bytes too
const encoder = new TextEncoder();

/** Length of the valid UTF-8 sequence starting at `i`, or 0 when the byte there starts none. */
function sequenceLength(bytes: Uint8Array, i: number): number {
  const b = bytes[i];
  if (b < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => bytes[i + k] >= lo && bytes[i + k] <= hi;
  if (b >= 0xc2 && b <= 0xdf) return cont(1) ? 2 : 0;
  if (b >= 0xe0 && b <= 0xef) {
    const lo = b === 0xe0 ? 0xa0 : 0x80;
    const hi = b === 0xed ? 0x9f : 0xbf;
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (b >= 0xf0 && b <= 0xf4) {
    const lo = b === 0xf0 ? 0x90 : 0x80;
    const hi = b === 0xf4 ? 0x8f : 0xbf;
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

/** Decodes a Nix string's bytes as UTF-8, keeping each invalid byte as a lone surrogate U+DC80..U+DCFF. */
export function decodeNixString(bytes: Uint8Array): string {
  try {
    return fatal.decode(bytes);
  } catch {
    let out = "";
    let i = 0;
    while (i < bytes.length) {
      const n = sequenceLength(bytes, i);
      if (n === 0) {
        out += String.fromCharCode(0xdc00 + bytes[i]);
        i++;
      } else {
        out += fatal.decode(bytes.subarray(i, i + n));
        i += n;
      }
    }
    return out;
  }
}

const ESCAPED_BYTE = /(?<![\ud800-\udbff])[\udc80-\udcff]/;

/** Encodes as UTF-8, turning the lone surrogates of {@link decodeNixString} back into bytes. */
export function encodeNixString(text: string): Uint8Array<ArrayBuffer> {
  if (!ESCAPED_BYTE.test(text)) return encoder.encode(text);
  const parts: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    const escaped = unit >= 0xdc80 && unit <= 0xdcff &&
      !(i > 0 && text.charCodeAt(i - 1) >= 0xd800 && text.charCodeAt(i - 1) <= 0xdbff);
    if (escaped) {
      parts.push(unit - 0xdc00);
      continue;
    }
    const isPair = unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length &&
      text.charCodeAt(i + 1) >= 0xdc00 && text.charCodeAt(i + 1) <= 0xdfff;
    const chunk = text.slice(i, isPair ? i + 2 : i + 1);
    if (isPair) i++;
    parts.push(...encoder.encode(chunk));
  }
  return new Uint8Array(parts);
}

/** Whether `text` encodes to valid UTF-8 (holds no bytes kept by {@link decodeNixString}). */
export function isUtf8Text(text: string): boolean {
  return !ESCAPED_BYTE.test(text);
}
