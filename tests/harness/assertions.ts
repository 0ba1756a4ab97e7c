/**
 * Element access that fails the test, with what was there, instead of yielding `undefined`
 * (the compiler's noUncheckedIndexedAccess makes every `list[i]` possibly undefined).
 */
import * as assert from "node:assert/strict";
import { inspect } from "node:util";

/** `list[index]`; fails the test when the list has no such element. */
export function at<T>(list: readonly T[], index: number): T {
  const value = list[index];
  if (value === undefined) assert.fail(`expected an element at [${index}] of ${inspect(list)}`);
  return value;
}

/** The first element of `list`; fails the test when it is empty. */
export function first<T>(list: readonly T[]): T {
  return at(list, 0);
}

/** The one element of `list`; fails the test when it has none or more. */
export function only<T>(list: readonly T[]): T {
  if (list.length !== 1) assert.fail(`expected exactly one element in ${inspect(list)}`);
  return at(list, 0);
}

/** `value`, failing the test when it is undefined (a missing record entry or output). */
export function defined<T>(value: T | undefined, what: string): T {
  if (value === undefined) assert.fail(`expected ${what} to be defined`);
  return value;
}
