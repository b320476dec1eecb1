/** The URL field of a narinfo must name a file inside the cache that serves it. */

/**
 * Throws a SyntaxError unless `url` is a relative reference that stays inside the cache: no scheme,
 * no leading '/', no '.' or '..' segment (also percent-encoded), no back slash or control
 * character. A query (`nar/x.nar?hash=...`, as some servers write) is allowed.
 */
export function checkNarUrl(url: string): void {
  if (url === "") throw new SyntaxError("URL is empty");
  const reject = (why: string) => new SyntaxError(`URL '${url}' ${why}`);
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(url)) {
    throw reject("has a scheme; a NAR must be named relative to its cache");
  }
  if (url.startsWith("/")) throw reject("is absolute; a NAR must be named relative to its cache");
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x20\x7f\\#]/.test(url)) {
    throw reject("contains white space, a control character, '\\' or '#'");
  }
  const query = url.indexOf("?");
  const path = query < 0 ? url : url.slice(0, query);
  for (const segment of path.split("/")) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      throw reject(`has a malformed percent escape in '${segment}'`);
    }
    if (segment === "") throw reject("has an empty path segment");
    if (decoded === "." || decoded === ".." || /[/\\]/.test(decoded)) {
      throw reject(`has the path segment '${segment}', which could leave the cache`);
    }
  }
}
