// SFrame (RFC 9605) with WebCrypto: the header (§4.3), the key schedule (§4.4.2), the AEADs of every cipher suite
// (§4.5: AES-GCM, and AES-CTR with HMAC-SHA256 per §4.5.1) and a per-KID replay window. The same behaviour, byte
// for byte, as the Go package github.com/stoa-rtc/stoa/sframe. KIDs and counters are BigInts (64-bit).

/** An SFrame failure; `code` is what callers act on. */
export class SFrameError extends Error {
  /**
   * @param {'unsupported_suite'|'truncated_header'|'auth'|'replay'|'unknown_kid'|'short_frame'|'counter_exhausted'|'bad_key'} code
   * @param {string} message
   */
  constructor(code, message) {
    super('sframe: ' + message);
    this.name = 'SFrameError';
    this.code = code;
  }
}

/** The cipher suites of RFC 9605 §4.5. */
export const Suite = Object.freeze({
  AES_128_CTR_HMAC_SHA256_80: 1,
  AES_128_CTR_HMAC_SHA256_64: 2,
  AES_128_CTR_HMAC_SHA256_32: 3,
  AES_128_GCM_SHA256_128: 4,
  AES_256_GCM_SHA512_128: 5,
});

/** The suite Stoa uses unless configured otherwise. */
export const DEFAULT_SUITE = Suite.AES_128_GCM_SHA256_128;

/**
 * @typedef {{name: string, hash: 'SHA-256'|'SHA-512', nk: number, nt: number, ctrHMAC: boolean}} SuiteParams
 * @type {Record<number, SuiteParams>}
 */
const SUITES = {
  1: { name: 'AES_128_CTR_HMAC_SHA256_80', hash: 'SHA-256', nk: 48, nt: 10, ctrHMAC: true },
  2: { name: 'AES_128_CTR_HMAC_SHA256_64', hash: 'SHA-256', nk: 48, nt: 8, ctrHMAC: true },
  3: { name: 'AES_128_CTR_HMAC_SHA256_32', hash: 'SHA-256', nk: 48, nt: 4, ctrHMAC: true },
  4: { name: 'AES_128_GCM_SHA256_128', hash: 'SHA-256', nk: 16, nt: 16, ctrHMAC: false },
  5: { name: 'AES_256_GCM_SHA512_128', hash: 'SHA-512', nk: 32, nt: 16, ctrHMAC: false },
};

/** Nn, the nonce and salt size of every suite. */
export const NONCE_SIZE = 12;

/** The length of the longest SFrame header: KID and CTR both 8 bytes long. */
export const MAX_HEADER_LEN = 17;

const MAX_U64 = (1n << 64n) - 1n;

/**
 * Returns the parameters of a suite, or throws unsupported_suite.
 * @param {number} suite
 * @returns {SuiteParams}
 */
export function suiteParams(suite) {
  const p = SUITES[suite];
  if (!p) throw new SFrameError('unsupported_suite', `unsupported cipher suite ${suite}`);
  return p;
}

// The header (§4.3): a configuration byte X KKK Y CCC, then the KID's extended bytes (X = 1), then the CTR's
// (Y = 1). A value below 8 fits in its 3 bits; otherwise the 3 bits hold its byte length minus one.

/** @param {bigint} v */
function valueLen(v) {
  let n = 1;
  while (n < 8 && v >> BigInt(8 * n) !== 0n) n++;
  return n;
}

/** @param {bigint} v */
function checkU64(v) {
  if (typeof v !== 'bigint' || v < 0n || v > MAX_U64) throw new RangeError('sframe: KID and CTR must be 64-bit BigInts');
}

/**
 * Encodes the minimal header of (kid, ctr), as senders must (§4.3).
 * @param {bigint} kid
 * @param {bigint} ctr
 * @returns {Uint8Array}
 */
export function encodeHeader(kid, ctr) {
  checkU64(kid);
  checkU64(ctr);
  const kl = kid < 8n ? 0 : valueLen(kid);
  const cl = ctr < 8n ? 0 : valueLen(ctr);
  const out = new Uint8Array(1 + kl + cl);
  out[0] = ((kl ? 0x8 | (kl - 1) : Number(kid)) << 4) | (cl ? 0x8 | (cl - 1) : Number(ctr));
  for (let i = 0; i < kl; i++) out[1 + i] = Number((kid >> BigInt(8 * (kl - 1 - i))) & 0xffn);
  for (let i = 0; i < cl; i++) out[1 + kl + i] = Number((ctr >> BigInt(8 * (cl - 1 - i))) & 0xffn);
  return out;
}

/**
 * Decodes the header at b[offset:]: any well-formed encoding, minimal or not, as receivers must accept.
 * @param {Uint8Array} b
 * @param {number} [offset]
 * @returns {{kid: bigint, ctr: bigint, length: number}}
 */
export function parseHeader(b, offset = 0) {
  if (b.length <= offset) throw new SFrameError('truncated_header', 'truncated header');
  const cfg = b[offset];
  const field = (/** @type {number} */ nibble, /** @type {number} */ at) => {
    if ((nibble & 0x8) === 0) return { v: BigInt(nibble & 0x7), n: 0 };
    const n = (nibble & 0x7) + 1;
    if (b.length < at + n) throw new SFrameError('truncated_header', 'truncated header');
    let v = 0n;
    for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(b[at + i]);
    return { v, n };
  };
  const kid = field(cfg >> 4, offset + 1);
  const ctr = field(cfg & 0xf, offset + 1 + kid.n);
  return { kid: kid.v, ctr: ctr.v, length: 1 + kid.n + ctr.n };
}

/** How far below the highest accepted counter a window still accepts an unseen one (RFC 6479 style, 16 × 64 bits). */
export const REPLAY_WINDOW_SIZE = 960;

const REPLAY_BLOCKS = 16n;

/**
 * The anti-replay window of one KID: accepts a counter if none was accepted yet, if it is above the highest
 * accepted one (top), or if it is less than REPLAY_WINDOW_SIZE below top and not accepted before.
 */
export class ReplayWindow {
  constructor() {
    /** @type {bigint} */ this.top = 0n;
    this.seen = false;
    this.blocks = new BigUint64Array(Number(REPLAY_BLOCKS));
  }

  /** @param {bigint} ctr */
  #bit(ctr) {
    return { i: Number((ctr / 64n) % REPLAY_BLOCKS), mask: 1n << (ctr % 64n) };
  }

  /** Reports whether ctr would be accepted, without recording it. @param {bigint} ctr */
  check(ctr) {
    if (!this.seen || ctr > this.top) return true;
    if (this.top - ctr >= BigInt(REPLAY_WINDOW_SIZE)) return false;
    const { i, mask } = this.#bit(ctr);
    return (this.blocks[i] & mask) === 0n;
  }

  /** Records ctr if check(ctr) holds, and reports whether it did. Only for authentic frames. @param {bigint} ctr */
  accept(ctr) {
    if (!this.check(ctr)) return false;
    if (this.seen && ctr > this.top) {
      // Clear the blocks the window slides over, at most the whole ring.
      const from = this.top / 64n;
      const steps = ctr / 64n - from;
      for (let k = 1n; k <= steps && k <= REPLAY_BLOCKS; k++) this.blocks[Number((from + k) % REPLAY_BLOCKS)] = 0n;
    }
    if (!this.seen || ctr > this.top) {
      this.top = ctr;
      this.seen = true;
    }
    const { i, mask } = this.#bit(ctr);
    this.blocks[i] |= mask;
    return true;
  }
}

/** @param {bigint} v @param {number} size */
function bigEndian(v, size) {
  const out = new Uint8Array(size);
  for (let i = size - 1; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

/** @param {...Uint8Array} parts */
export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const encoder = new TextEncoder();

/**
 * HKDF (RFC 5869) with an empty salt: Expand(Extract("", ikm), info, length).
 * @param {'SHA-256'|'SHA-512'} hash
 * @param {Uint8Array} ikm
 * @param {Uint8Array} info
 * @param {number} length in bytes
 */
export async function hkdf(hash, ikm, info, length) {
  const key = await crypto.subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits({ name: 'HKDF', hash, salt: new Uint8Array(0), info }, key, length * 8);
  return new Uint8Array(bits);
}

/**
 * The AEAD of a suite with its key imported into WebCrypto.
 * @typedef {{suite: number, nt: number, gcm?: CryptoKey, ctr?: CryptoKey, mac?: CryptoKey}} AEADKey
 */

/**
 * Imports an sframe_key (Nk bytes) for its suite's AEAD.
 * @param {number} suite
 * @param {Uint8Array} key
 * @returns {Promise<AEADKey>}
 */
export async function importAEADKey(suite, key) {
  const p = suiteParams(suite);
  if (key.length !== p.nk) throw new SFrameError('bad_key', `${p.name} key must be ${p.nk} bytes, got ${key.length}`);
  if (!p.ctrHMAC) {
    return { suite, nt: p.nt, gcm: await crypto.subtle.importKey('raw', key, 'AES-GCM', false, ['encrypt', 'decrypt']) };
  }
  const [ctr, mac] = await Promise.all([
    crypto.subtle.importKey('raw', key.subarray(0, 16), 'AES-CTR', false, ['encrypt']),
    crypto.subtle.importKey('raw', key.subarray(16), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']),
  ]);
  return { suite, nt: p.nt, ctr, mac };
}

/** The AES-CTR-HMAC tag (§4.5.1). @param {AEADKey} k @param {Uint8Array} nonce @param {Uint8Array} aad @param {Uint8Array} ct */
async function ctrHMACTag(k, nonce, aad, ct) {
  const lengths = concat(bigEndian(BigInt(aad.length), 8), bigEndian(BigInt(ct.length), 8), bigEndian(BigInt(k.nt), 8));
  const mac = await crypto.subtle.sign('HMAC', /** @type {CryptoKey} */ (k.mac), concat(lengths, nonce, aad, ct));
  return new Uint8Array(mac, 0, k.nt);
}

/** AES-128-CTR with the initial counter block nonce || 0x00000000. @param {AEADKey} k @param {Uint8Array} nonce @param {Uint8Array} data */
async function ctrXOR(k, nonce, data) {
  const counter = concat(nonce, new Uint8Array(4));
  const out = await crypto.subtle.encrypt({ name: 'AES-CTR', counter, length: 32 }, /** @type {CryptoKey} */ (k.ctr), data);
  return new Uint8Array(out);
}

/**
 * Encrypts and authenticates: returns ciphertext || tag.
 * @param {AEADKey} k
 * @param {Uint8Array} nonce
 * @param {Uint8Array} aad
 * @param {Uint8Array} plaintext
 * @returns {Promise<Uint8Array>}
 */
export async function aeadSeal(k, nonce, aad, plaintext) {
  if (k.gcm) {
    const out = await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: aad, tagLength: 128 }, k.gcm, plaintext);
    return new Uint8Array(out);
  }
  const ct = await ctrXOR(k, nonce, plaintext);
  return concat(ct, await ctrHMACTag(k, nonce, aad, ct));
}

/**
 * Authenticates and decrypts ciphertext || tag; throws auth on a bad tag.
 * @param {AEADKey} k
 * @param {Uint8Array} nonce
 * @param {Uint8Array} aad
 * @param {Uint8Array} sealed
 * @returns {Promise<Uint8Array>}
 */
export async function aeadOpen(k, nonce, aad, sealed) {
  if (sealed.length < k.nt) throw new SFrameError('auth', 'authentication failed');
  if (k.gcm) {
    try {
      const out = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: nonce, additionalData: aad, tagLength: 128 }, k.gcm, sealed);
      return new Uint8Array(out);
    } catch {
      throw new SFrameError('auth', 'authentication failed');
    }
  }
  const ct = sealed.subarray(0, sealed.length - k.nt);
  const tag = await ctrHMACTag(k, nonce, aad, ct);
  let diff = 0; // constant time: every byte is compared
  for (let i = 0; i < k.nt; i++) diff |= tag[i] ^ sealed[ct.length + i];
  if (diff !== 0) throw new SFrameError('auth', 'authentication failed');
  return ctrXOR(k, nonce, ct);
}

/**
 * The info of the §4.4.2 expansions: label || be64(kid) || be16(suite).
 * @param {string} label
 * @param {bigint} kid
 * @param {number} suite
 */
export function scheduleLabel(label, kid, suite) {
  return concat(encoder.encode(label), bigEndian(kid, 8), bigEndian(BigInt(suite), 2));
}

/**
 * The keys of one KID: the AEAD key and sframe_salt of the key schedule (§4.4.2).
 * @typedef {{kid: bigint, aead: AEADKey, salt: Uint8Array}} KIDKeys
 */

/**
 * Runs the key schedule of (suite, kid, base_key):
 * sframe_key = HKDF(base_key, "SFrame 1.0 Secret key " || be64(KID) || be16(suite), Nk), and sframe_salt likewise
 * with "SFrame 1.0 Secret salt " and Nn, with the suite's hash and an empty salt.
 * @param {number} suite
 * @param {bigint} kid
 * @param {Uint8Array} baseKey
 * @returns {Promise<KIDKeys & {key: Uint8Array}>}
 */
export async function deriveKIDKeys(suite, kid, baseKey) {
  const p = suiteParams(suite);
  checkU64(kid);
  if (baseKey.length === 0) throw new SFrameError('bad_key', 'empty base key');
  const [key, salt] = await Promise.all([
    hkdf(p.hash, baseKey, scheduleLabel('SFrame 1.0 Secret key ', kid, suite), p.nk),
    hkdf(p.hash, baseKey, scheduleLabel('SFrame 1.0 Secret salt ', kid, suite), NONCE_SIZE),
  ]);
  return { kid, key, salt, aead: await importAEADKey(suite, key) };
}

/** nonce = sframe_salt XOR (4 zero bytes || be64(ctr)). @param {Uint8Array} salt @param {bigint} ctr */
export function nonceFor(salt, ctr) {
  const n = bigEndian(ctr, NONCE_SIZE);
  for (let i = 0; i < NONCE_SIZE; i++) n[i] ^= salt[i];
  return n;
}

/**
 * Seals one frame: header || ciphertext || tag, with aad = header || metadata.
 * @param {KIDKeys} keys
 * @param {bigint} ctr
 * @param {Uint8Array} metadata
 * @param {Uint8Array} plaintext
 */
export async function sealFrame(keys, ctr, metadata, plaintext) {
  const header = encodeHeader(keys.kid, ctr);
  const sealed = await aeadSeal(keys.aead, nonceFor(keys.salt, ctr), concat(header, metadata), plaintext);
  return concat(header, sealed);
}

/**
 * Opens one frame (header || ciphertext || tag) whose header was parsed as h; the caller checks the replay window.
 * @param {KIDKeys} keys
 * @param {{ctr: bigint, length: number}} h
 * @param {Uint8Array} metadata
 * @param {Uint8Array} frame
 */
export function openFrame(keys, h, metadata, frame) {
  const header = frame.subarray(0, h.length);
  return aeadOpen(keys.aead, nonceFor(keys.salt, h.ctr), concat(header, metadata), frame.subarray(h.length));
}

/**
 * Lowercase hex of bytes.
 * @param {Uint8Array} b
 */
export function toHex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * Bytes of a hex string; throws on anything else.
 * @param {string} s
 */
export function fromHex(s) {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new TypeError('not a hex string');
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
  return out;
}
