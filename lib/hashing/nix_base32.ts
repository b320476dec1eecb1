/** Nix's base-32 ("nix32"): a little-endian bit string printed most significant group first. */

const ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz";
const DIGIT_VALUES = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DIGIT_VALUES[ALPHABET.charCodeAt(i)] = i;

/** Characters of the nix32 alphabet, for validating hash parts without decoding them. */
export const NIX_BASE32_ALPHABET = ALPHABET;

/** Number of nix32 characters that encode `byteLength` bytes. */
export function nixBase32Length(byteLength: number): number {
  return Math.floor((byteLength * 8 - 1) / 5) + 1;
}

/** Whether `code` (a char code) is a digit of the nix32 alphabet. */
export function isNixBase32Digit(code: number): boolean {
  return code < 128 && DIGIT_VALUES[code] >= 0;
}

/** Encodes bytes as nix32. */
export function encodeNixBase32(bytes: Uint8Array): string {
  const len = nixBase32Length(bytes.length);
  let out = "";
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    const c = (bytes[i] >> j) | (i + 1 < bytes.length ? bytes[i + 1] << (8 - j) : 0);
    out += ALPHABET[c & 31];
  }
  return out;
}

/** Decodes nix32 text into `byteLength` bytes; throws a SyntaxError on a bad digit or overflow. */
export function decodeNixBase32(text: string, byteLength: number): Uint8Array {
  if (text.length !== nixBase32Length(byteLength)) {
    throw new SyntaxError(
      `Nix base-32 text '${text}' has ${text.length} characters, expected ${
        nixBase32Length(byteLength)
      }`,
    );
  }
  const out = new Uint8Array(byteLength);
  for (let n = 0; n < text.length; n++) {
    const code = text.charCodeAt(text.length - n - 1);
    const digit = code < 128 ? DIGIT_VALUES[code] : -1;
    if (digit < 0) {
      throw new SyntaxError(`Invalid character '${text[text.length - n - 1]}' in Nix base-32 text`);
    }
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    out[i] |= (digit << j) & 0xff;
    const carry = digit >> (8 - j);
    if (i + 1 < byteLength) out[i + 1] |= carry;
    else if (carry) {
      throw new SyntaxError(`Nix base-32 text '${text}' overflows ${byteLength} bytes`);
    }
  }
  return out;
}
