// The SDK's test runner: runs every test of the imported modules in this page (real WebCrypto, no shims) and
// returns one result per test, plus what the tests hand back to the Go side.

import { tests as sframeTests } from './sframe_test.js';
import { tests as mediaTests } from './media_test.js';

/**
 * Runs every test with input (from the Go test) and resolves to a JSON string:
 * {results: [{name, error}], out: {...}} where error is "" for a passing test.
 * @param {any} input
 */
export async function run(input) {
  const out = {};
  const results = [];
  for (const [name, fn] of Object.entries({ ...sframeTests, ...mediaTests })) {
    try {
      await fn(input, out);
      results.push({ name, error: '' });
    } catch (e) {
      results.push({ name, error: String(e && e.stack ? e.stack : e) });
    }
  }
  return JSON.stringify({ results, out });
}

/** Throws with message unless cond. @param {boolean} cond @param {string} message */
export function assert(cond, message) {
  if (!cond) throw new Error(message);
}

/** Throws unless a and b hold the same bytes. @param {Uint8Array} a @param {Uint8Array} b @param {string} what */
export function assertBytes(a, b, what) {
  const hex = (/** @type {Uint8Array} */ x) => Array.from(x, (v) => v.toString(16).padStart(2, '0')).join('');
  if (hex(a) !== hex(b)) throw new Error(`${what}: got ${hex(a)}, want ${hex(b)}`);
}

/** Resolves to the SFrameError code fn throws, or throws if it does not. @param {() => Promise<any>} fn */
export async function rejects(fn) {
  try {
    await fn();
  } catch (e) {
    return /** @type {any} */ (e).code || String(e);
  }
  throw new Error('did not throw');
}

/** Parses JSON keeping the integers of the given keys exact, as strings (KIDs and counters are 64-bit). @param {string} text */
export function parseExact(text) {
  return JSON.parse(text.replace(/"(kid|ctr)":\s*(\d+)/g, '"$1":"$2"'));
}
