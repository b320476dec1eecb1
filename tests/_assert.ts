/**
 * The few assertions the tests use. `@std/assert` lives on JSR, which is out of reach here, so
 * these wrap `node:assert` with the std names.
 */

import assert from "node:assert/strict";

export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  assert.deepStrictEqual(actual, expected, message);
}

export function assertNotEquals<T>(actual: T, expected: T, message?: string): void {
  assert.notDeepStrictEqual(actual, expected, message);
}

export function assert_(condition: unknown, message?: string): asserts condition {
  assert.ok(condition, message);
}

export { assert_ as assert };

export function assertMatch(actual: string, pattern: RegExp, message?: string): void {
  assert.match(actual, pattern, message);
}

export function assertStringIncludes(actual: string, expected: string, message?: string): void {
  if (!actual.includes(expected)) {
    throw new assert.AssertionError({
      message: message ??
        `Expected ${JSON.stringify(actual)} to include ${JSON.stringify(expected)}`,
      actual,
      expected,
    });
  }
}

// deno-lint-ignore no-explicit-any
type ErrorClass = new (...args: any[]) => Error;

/** Asserts that `fn` throws an instance of `errorClass` whose message includes `includes`. */
export function assertThrows(fn: () => unknown, errorClass?: ErrorClass, includes?: string): Error {
  try {
    fn();
  } catch (e) {
    checkError(e, errorClass, includes);
    return e as Error;
  }
  throw new assert.AssertionError({ message: "Expected function to throw" });
}

/** Asserts that `fn` rejects with an instance of `errorClass` whose message includes `includes`. */
export async function assertRejects(
  fn: () => Promise<unknown>,
  errorClass?: ErrorClass,
  includes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    checkError(e, errorClass, includes);
    return e as Error;
  }
  throw new assert.AssertionError({ message: "Expected function to reject" });
}

function checkError(e: unknown, errorClass?: ErrorClass, includes?: string): void {
  if (errorClass && !(e instanceof errorClass)) {
    throw new assert.AssertionError({
      message: `Expected ${errorClass.name}, got ${(e as Error)?.constructor?.name}: ${e}`,
    });
  }
  if (includes !== undefined && !(e as Error).message.includes(includes)) {
    throw new assert.AssertionError({
      message: `Expected message to include ${JSON.stringify(includes)}, got ${
        JSON.stringify((e as Error).message)
      }`,
    });
  }
}
