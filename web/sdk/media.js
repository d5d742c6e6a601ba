// Stoa's media profile of SFrame (docs/e2ee.md), as github.com/stoa-rtc/stoa/sframe/media does it: every member of a
// channel derives any sender's keys from one channel secret and the KID in its frames, and a few leading codec
// bytes stay in the clear for the browser's depacketizers, authenticated as SFrame metadata.

import { SFrameError, ReplayWindow, concat, deriveKIDKeys, hkdf, openFrame, parseHeader, sealFrame, suiteParams } from './sframe.js';

/** The length in bytes of a channel secret. */
export const SECRET_SIZE = 32;

/** How many sender KIDs a MediaReceiver learns at most. */
export const MAX_KIDS = 1024;

/** Which leading bytes of a frame stay in the clear. */
export const Codec = Object.freeze({ DATA: 0, OPUS: 1, VP8: 2 });

const MAX_COUNTER = (1n << 64n) - 1n;

/**
 * How many leading bytes of frame stay in the clear under codec: Opus 1 (TOC), VP8 10 on key frames (bit 0 of
 * byte 0 clear) and 3 on delta frames, data 0. It reads only byte 0, which is itself in the clear.
 * @param {number} codec
 * @param {Uint8Array} frame
 * @returns {{n: number, ok: boolean}} ok is false when frame is shorter than its prefix
 */
export function clearPrefixLen(codec, frame) {
  let n;
  switch (codec) {
    case Codec.DATA:
      return { n: 0, ok: true };
    case Codec.OPUS:
      n = 1;
      break;
    case Codec.VP8:
      n = frame.length > 0 && (frame[0] & 0x01) === 0 ? 10 : 3;
      break;
    default:
      return { n: 0, ok: false };
  }
  return { n, ok: frame.length >= n };
}

/**
 * A random KID of key generation gen: gen in the top 8 bits, 56 random bits below.
 * @param {number} gen 0-255
 */
export function newKID(gen) {
  if (!Number.isInteger(gen) || gen < 0 || gen > 255) throw new RangeError('sframe: key generation must be 0-255');
  const b = crypto.getRandomValues(new Uint8Array(8));
  b[0] = gen;
  return b.reduce((v, x) => (v << 8n) | BigInt(x), 0n);
}

/** The key generation of a KID: its top 8 bits. @param {bigint} kid */
export function generation(kid) {
  return Number(kid >> 56n);
}

/** A new random channel secret. */
export function generateSecret() {
  return crypto.getRandomValues(new Uint8Array(SECRET_SIZE));
}

/** @param {Uint8Array} secret */
function checkSecret(secret) {
  if (!(secret instanceof Uint8Array) || secret.length !== SECRET_SIZE) {
    throw new SFrameError('bad_key', `channel secret must be ${SECRET_SIZE} bytes`);
  }
}

/**
 * The SFrame base key of kid: HKDF-SHA256(salt = "", IKM = secret, info = "stoa e2ee sender" || be64(kid), L = Nk).
 * @param {number} suite
 * @param {Uint8Array} secret
 * @param {bigint} kid
 */
export async function senderKey(suite, secret, kid) {
  const p = suiteParams(suite);
  checkSecret(secret);
  const info = new Uint8Array(24);
  info.set(new TextEncoder().encode('stoa e2ee sender'));
  new DataView(info.buffer).setBigUint64(16, kid);
  return hkdf('SHA-256', secret, info, p.nk);
}

/** @param {number} suite @param {Uint8Array} secret @param {bigint} kid */
async function kidKeys(suite, secret, kid) {
  const base = await senderKey(suite, secret, kid);
  const keys = await deriveKIDKeys(suite, kid, base);
  base.fill(0);
  keys.key.fill(0); // only the imported CryptoKeys are kept
  return keys;
}

/** Encrypts the frames of one sender. Counters start at 0 and are taken in call order. */
export class MediaSender {
  /**
   * @param {import('./sframe.js').KIDKeys} keys
   */
  constructor(keys) {
    this.keys = keys;
    this.ctr = 0n;
  }

  /**
   * A sender with key identifier kid (newKID) whose base key is derived from the secret of kid's generation.
   * @param {number} suite
   * @param {Uint8Array} secret
   * @param {bigint} kid
   */
  static async create(suite, secret, kid) {
    return new MediaSender(await kidKeys(suite, secret, kid));
  }

  get kid() {
    return this.keys.kid;
  }

  /**
   * Encrypts one encoded frame: clear_prefix || header || ciphertext || tag. Throws short_frame for a frame
   * shorter than its codec's clear prefix. The counter is taken before the first await, so concurrent calls
   * never share one.
   * @param {number} codec
   * @param {Uint8Array} frame
   */
  async seal(codec, frame) {
    const { n, ok } = clearPrefixLen(codec, frame);
    if (!ok) {
      if (codec !== Codec.DATA && codec !== Codec.OPUS && codec !== Codec.VP8) throw new TypeError(`sframe: unknown codec ${codec}`);
      throw new SFrameError('short_frame', 'media frame shorter than its codec\'s clear prefix');
    }
    if (this.ctr > MAX_COUNTER) throw new SFrameError('counter_exhausted', 'counter exhausted: use a new KID');
    const ctr = this.ctr++;
    const prefix = frame.subarray(0, n);
    return concat(prefix, await sealFrame(this.keys, ctr, prefix, frame.subarray(n)));
  }
}

/**
 * Counters of a MediaReceiver: rejected frames are dropped and counted, never fatal.
 * @typedef {{opened: number, replayed: number, rejected: number, unknownKID: number}} ReceiverStats
 * unknownKID counts the rejected frames whose KID had no key and could not be learned (no secret for its
 * generation, or MAX_KIDS reached); they are part of rejected too.
 */

/**
 * Decrypts the frames of every sender of a channel. It holds the channel secrets by generation and learns a KID's
 * keys from its first authentic frame.
 */
export class MediaReceiver {
  /** @param {number} suite */
  constructor(suite) {
    suiteParams(suite);
    this.suite = suite;
    /** @type {Map<number, Uint8Array>} */ this.secrets = new Map();
    /** @type {Map<bigint, {keys: Promise<import('./sframe.js').KIDKeys>, window: ReplayWindow, learned: boolean}>} */
    this.kids = new Map();
    /** @type {ReceiverStats} */ this.stats = { opened: 0, replayed: 0, rejected: 0, unknownKID: 0 };
  }

  /**
   * Sets the secret of key generation gen (a copy is kept); fails if gen has one (remove it first).
   * @param {number} gen
   * @param {Uint8Array} secret
   */
  addSecret(gen, secret) {
    checkSecret(secret);
    if (this.secrets.has(gen)) throw new Error(`sframe: key generation ${gen} already has a secret; remove it first`);
    this.secrets.set(gen, secret.slice());
  }

  /** Forgets the secret of gen and every key learned from it. @param {number} gen */
  removeSecret(gen) {
    const secret = this.secrets.get(gen);
    if (!secret) return false;
    secret.fill(0);
    this.secrets.delete(gen);
    for (const kid of this.kids.keys()) if (generation(kid) === gen) this.kids.delete(kid);
    return true;
  }

  /**
   * Authenticates and decrypts a wire frame of codec; resolves to clear_prefix || payload. Rejections throw an
   * SFrameError (code 'replay' for a genuine duplicate, 'unknown_kid' or 'auth' otherwise) and are counted.
   * @param {number} codec
   * @param {Uint8Array} wire
   */
  async open(codec, wire) {
    try {
      const out = await this.#open(codec, wire);
      this.stats.opened++;
      return out;
    } catch (e) {
      if (e instanceof SFrameError && e.code === 'replay') this.stats.replayed++;
      else {
        this.stats.rejected++;
        if (e instanceof SFrameError && e.code === 'unknown_kid') this.stats.unknownKID++;
      }
      throw e instanceof SFrameError ? e : new SFrameError('auth', 'authentication failed');
    }
  }

  /** @param {number} codec @param {Uint8Array} wire */
  async #open(codec, wire) {
    const { n, ok } = clearPrefixLen(codec, wire);
    if (!ok) throw new SFrameError('auth', 'frame shorter than its clear prefix');
    const prefix = wire.subarray(0, n);
    const frame = wire.subarray(n);
    const h = parseHeader(frame);
    let entry = this.kids.get(h.kid);
    if (!entry) {
      const secret = this.secrets.get(generation(h.kid));
      if (!secret || this.kids.size >= MAX_KIDS) throw new SFrameError('unknown_kid', 'no key for this KID');
      // Learn the KID, but keep it only once a frame authenticates (forged frames leave no state).
      entry = { keys: kidKeys(this.suite, secret, h.kid), window: new ReplayWindow(), learned: false };
      this.kids.set(h.kid, entry);
    }
    let plain;
    try {
      plain = await openFrame(await entry.keys, h, prefix, frame);
    } catch (e) {
      if (!entry.learned && this.kids.get(h.kid) === entry) this.kids.delete(h.kid);
      throw e;
    }
    if (this.kids.get(h.kid) !== entry) throw new SFrameError('unknown_kid', 'the KID\'s secret was removed');
    entry.learned = true;
    if (!entry.window.accept(h.ctr)) throw new SFrameError('replay', 'replayed frame');
    return concat(prefix, plain);
  }
}
