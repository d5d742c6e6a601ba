// Tests of the SFrame core against the RFC 9605 test vectors (Appendix C), in the browser.

import { ReplayWindow, REPLAY_WINDOW_SIZE, aeadOpen, aeadSeal, deriveKIDKeys, encodeHeader, fromHex, importAEADKey, nonceFor, openFrame, parseHeader, sealFrame } from '/sdk/stoa.js';
import { assert, assertBytes, parseExact, rejects } from './run.js';

/** @param {any} input */
const vectors = (input) => parseExact(input.rfc);

export const tests = {
  async rfcHeaders(/** @type {any} */ input) {
    const v = vectors(input).header;
    assert(v.length > 100, `only ${v.length} header vectors`);
    for (const c of v) {
      const kid = BigInt(c.kid), ctr = BigInt(c.ctr);
      assertBytes(encodeHeader(kid, ctr), fromHex(c.encoded), `header ${c.kid} ${c.ctr}`);
      const h = parseHeader(fromHex(c.encoded + 'ff'));
      assert(h.kid === kid && h.ctr === ctr && h.length === c.encoded.length / 2, `parse ${c.encoded}`);
    }
  },

  async headerEdges() {
    // Non-minimal encodings are accepted; truncated ones are refused.
    const h = parseHeader(fromHex('8007'));
    assert(h.kid === 7n && h.ctr === 0n && h.length === 2, 'non-minimal KID');
    assert(parseHeader(fromHex('aa70'), 1).kid === 7n, 'offset');
    for (const t of ['', '08', '80', 'f001020304050607', '0f01020304050607']) {
      assert((await rejects(async () => parseHeader(fromHex(t)))) === 'truncated_header', `truncated ${t}`);
    }
    assert((await rejects(async () => encodeHeader(1n << 64n, 0n))).includes('RangeError'), '65-bit KID');
  },

  async rfcAESCTRHMAC(/** @type {any} */ input) {
    const v = vectors(input).aes_ctr_hmac;
    assert(v.length === 3, 'three AES-CTR-HMAC vectors');
    for (const c of v) {
      const k = await importAEADKey(c.cipher_suite, fromHex(c.key));
      const [nonce, aad, pt, ct] = [c.nonce, c.aad, c.pt, c.ct].map(fromHex);
      assertBytes(await aeadSeal(k, nonce, aad, pt), ct, `seal suite ${c.cipher_suite}`);
      assertBytes(await aeadOpen(k, nonce, aad, ct), pt, `open suite ${c.cipher_suite}`);
      const bad = ct.slice();
      bad[bad.length - 1] ^= 1;
      assert((await rejects(() => aeadOpen(k, nonce, aad, bad))) === 'auth', 'forged tag');
      assert((await rejects(() => aeadOpen(k, nonce, aad.subarray(1), ct))) === 'auth', 'other aad');
    }
  },

  async rfcSFrame(/** @type {any} */ input) {
    const v = vectors(input).sframe;
    assert(v.length === 5, 'one SFrame vector per suite');
    for (const c of v) {
      const kid = BigInt(c.kid), ctr = BigInt(c.ctr);
      const keys = await deriveKIDKeys(c.cipher_suite, kid, fromHex(c.base_key));
      assertBytes(keys.key, fromHex(c.sframe_key), `sframe_key suite ${c.cipher_suite}`);
      assertBytes(keys.salt, fromHex(c.sframe_salt), `sframe_salt suite ${c.cipher_suite}`);
      assertBytes(nonceFor(keys.salt, ctr), fromHex(c.nonce), `nonce suite ${c.cipher_suite}`);
      const [metadata, pt, ct] = [c.metadata, c.pt, c.ct].map(fromHex);
      assertBytes(await sealFrame(keys, ctr, metadata, pt), ct, `frame suite ${c.cipher_suite}`);
      const h = parseHeader(ct);
      assertBytes(await openFrame(keys, h, metadata, ct), pt, `open suite ${c.cipher_suite}`);
      assert((await rejects(() => openFrame(keys, h, metadata.subarray(1), ct))) === 'auth', 'metadata is authenticated');
    }
  },

  async replayWindow() {
    const w = new ReplayWindow();
    assert(w.accept(1000n) && !w.accept(1000n), 'duplicate of the first');
    assert(w.accept(1000n - BigInt(REPLAY_WINDOW_SIZE) + 1n), 'just inside the window');
    assert(!w.check(1000n - BigInt(REPLAY_WINDOW_SIZE)), 'just outside the window');
    assert(w.accept(999n) && !w.accept(999n) && w.accept(1001n), 'reordering');
    // A jump of more than the ring clears it: old counters are out, nothing stale remains.
    assert(w.accept(100000n) && !w.check(1001n) && w.check(100000n - 1n) && w.check(99100n), 'jump');
    // At every block boundary and at the top of the counter space.
    const b = new ReplayWindow();
    for (let c = 0n; c < 3000n; c += 61n) assert(b.accept(c) && !b.check(c), `counter ${c}`);
    const top = new ReplayWindow();
    assert(top.accept((1n << 64n) - 1n) && !top.check((1n << 64n) - 1n) && top.accept((1n << 64n) - 2n), 'top of the space');
  },
};
