// Tests of Stoa's media profile (docs/e2ee.md) against frames the Go package sframe/media made, both ways: these
// tests open Go's frames and seal the same frames byte for byte, and hand frames of their own to the Go test.

import { Codec, MediaReceiver, MediaSender, clearPrefixLen, fromHex, generation, newKID, senderKey, toHex } from '/sdk/stoa.js';
import { assert, assertBytes, rejects } from './run.js';

/** @type {Record<string, number>} */
const codecs = { data: Codec.DATA, opus: Codec.OPUS, vp8: Codec.VP8 };

/**
 * The Go-made cases: {suite, secret, kid, base_key, frames: [{codec, frame, wire}]}, counters 0, 1, ...
 * @param {any} input
 * @returns {{suite: number, secret: string, kid: string, base_key: string, frames: {codec: string, frame: string, wire: string}[]}[]}
 */
const cases = (input) => input.profile;

export const tests = {
  async profileSealsLikeGo(/** @type {any} */ input) {
    assert(cases(input).length >= 5, 'a case per suite');
    for (const c of cases(input)) {
      const kid = BigInt(c.kid);
      assertBytes(await senderKey(c.suite, fromHex(c.secret), kid), fromHex(c.base_key), `base key suite ${c.suite}`);
      const s = await MediaSender.create(c.suite, fromHex(c.secret), kid);
      for (const f of c.frames) {
        assertBytes(await s.seal(codecs[f.codec], fromHex(f.frame)), fromHex(f.wire), `suite ${c.suite} ${f.codec} ${f.frame}`);
      }
    }
  },

  async profileOpensGo(/** @type {any} */ input) {
    for (const c of cases(input)) {
      const r = new MediaReceiver(c.suite);
      r.addSecret(generation(BigInt(c.kid)), fromHex(c.secret));
      // Reversed: out-of-order frames within the window open too.
      for (const f of [...c.frames].reverse()) {
        assertBytes(await r.open(codecs[f.codec], fromHex(f.wire)), fromHex(f.frame), `suite ${c.suite} ${f.codec}`);
      }
      const f = c.frames[0];
      assert((await rejects(() => r.open(codecs[f.codec], fromHex(f.wire)))) === 'replay', 'replay');
      const forged = fromHex(f.wire);
      forged[forged.length - 1] ^= 0x80;
      assert((await rejects(() => r.open(codecs[f.codec], forged))) === 'auth', 'forged');
      assert(r.stats.opened === c.frames.length && r.stats.replayed === 1 && r.stats.rejected === 1, `stats ${JSON.stringify(r.stats)}`);
    }
  },

  async profileRejects(/** @type {any} */ input) {
    const c = cases(input)[0];
    const f = c.frames[0];
    const wire = fromHex(f.wire);
    // Another secret: the KID is learned on trial and dropped.
    const other = new MediaReceiver(c.suite);
    other.addSecret(generation(BigInt(c.kid)), crypto.getRandomValues(new Uint8Array(32)));
    assert((await rejects(() => other.open(codecs[f.codec], wire))) === 'auth', 'wrong secret');
    assert(other.kids.size === 0, 'a forged KID is not kept');
    // No secret for the KID's generation.
    const none = new MediaReceiver(c.suite);
    none.addSecret((generation(BigInt(c.kid)) + 1) % 256, fromHex(c.secret));
    assert((await rejects(() => none.open(codecs[f.codec], wire))) === 'unknown_kid', 'unknown generation');
    assert((await rejects(() => none.open(Codec.VP8, new Uint8Array([0x10, 1])))) === 'auth', 'short VP8 key frame');
    assert((await rejects(() => none.open(Codec.OPUS, new Uint8Array([0x78])))) === 'truncated_header', 'no header');
    assert(none.stats.rejected === 3 && none.stats.unknownKID === 1 && none.stats.opened === 0, `stats ${JSON.stringify(none.stats)}`);
    // Removing the secret forgets its KIDs.
    const r = new MediaReceiver(c.suite);
    r.addSecret(generation(BigInt(c.kid)), fromHex(c.secret));
    await r.open(codecs[f.codec], wire);
    assert(r.removeSecret(generation(BigInt(c.kid))) && r.kids.size === 0, 'removeSecret');
  },

  async clearPrefix() {
    const key = new Uint8Array(10);
    key[0] = 0x10;
    /** @type {[number, number[] | Uint8Array, number, boolean][]} */
    const table = [
      [Codec.DATA, [], 0, true], [Codec.OPUS, [], 1, false], [Codec.OPUS, [0x78, 1], 1, true],
      [Codec.VP8, key, 10, true], [Codec.VP8, key.subarray(0, 9), 10, false], [Codec.VP8, [0x31, 0, 0], 3, true],
      [Codec.VP8, [0x31, 0], 3, false], [Codec.VP8, [], 3, false], [3, [1, 2, 3], 0, false],
    ];
    for (const [codec, frame, n, ok] of table) {
      const got = clearPrefixLen(codec, Uint8Array.from(frame));
      assert(got.n === n && got.ok === ok, `clearPrefixLen(${codec}, ${frame}) = ${JSON.stringify(got)}`);
    }
    const s = await MediaSender.create(4, new Uint8Array(32), newKID(0));
    assert((await rejects(() => s.seal(Codec.OPUS, new Uint8Array(0)))) === 'short_frame', 'empty Opus frame');
    assert(s.ctr === 0n, 'a refused frame takes no counter');
  },

  // Frames for the Go test to open: every suite, a KID of generation 3 picked here, the Go cases' frames.
  async sealForGo(/** @type {any} */ input, /** @type {any} */ out) {
    out.sealed = [];
    for (const c of cases(input)) {
      const kid = newKID(3);
      assert(generation(kid) === 3, 'newKID generation');
      const s = await MediaSender.create(c.suite, fromHex(c.secret), kid);
      const frames = [];
      for (const f of c.frames) frames.push({ codec: f.codec, frame: f.frame, wire: toHex(await s.seal(codecs[f.codec], fromHex(f.frame))) });
      out.sealed.push({ suite: c.suite, secret: c.secret, kid: kid.toString(), frames });
    }
  },
};
