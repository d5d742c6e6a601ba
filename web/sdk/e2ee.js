// End-to-end encryption of a page's media: the encoded-frame transforms that seal what the page sends and open what
// it receives, with Stoa's media profile (media.js). They run in a dedicated worker: the SDK's own module, loaded a
// second time as a module worker, which recognises where it runs and installs the transform handlers. Chromium,
// Firefox and Safari hand frames over with RTCRtpScriptTransform; older Chromium with createEncodedStreams, whose
// streams are transferred to the same worker.

import { Codec, MediaReceiver, MediaSender, newKID } from './media.js';

/**
 * The counters of one decrypted track, by remote track id.
 * @typedef {{uid: string, kind: string, decrypted: number, failures: number}} TrackCrypto
 */

/** The frame crypto of one realm (the worker): one sender for every published track, one receiver. */
class FrameCrypto {
  constructor() {
    /** @type {Promise<{sender: MediaSender, receiver: MediaReceiver}> | null} */ this.keys = null;
    /** @type {Map<string, TrackCrypto>} */ this.tracks = new Map();
    this.sent = 0;
    this.sendFailures = 0;
  }

  /** @param {{suite: number, secret: Uint8Array, generation: number}} cfg */
  configure(cfg) {
    const receiver = new MediaReceiver(cfg.suite);
    receiver.addSecret(cfg.generation, cfg.secret);
    this.keys = MediaSender.create(cfg.suite, cfg.secret, newKID(cfg.generation)).then((sender) => ({ sender, receiver }));
    cfg.secret.fill(0);
  }

  /**
   * Pipes encoded frames through the sealing or opening transform.
   * @param {{side: 'send'|'recv', kind: string, track?: string, uid?: string}} o
   * @param {ReadableStream} readable
   * @param {WritableStream} writable
   */
  attach(o, readable, writable) {
    const codec = o.kind === 'audio' ? Codec.OPUS : Codec.VP8;
    /** @type {TrackCrypto} */
    const t = { uid: o.uid || '', kind: o.kind, decrypted: 0, failures: 0 };
    if (o.side === 'recv' && o.track) this.tracks.set(o.track, t);
    const transform = new TransformStream({
      transform: async (/** @type {any} */ frame, controller) => {
        const keys = await this.keys;
        if (!keys) return;
        try {
          if (o.side === 'send') {
            frame.data = (await keys.sender.seal(codec, new Uint8Array(frame.data))).buffer;
            this.sent++;
          } else {
            frame.data = (await keys.receiver.open(codec, new Uint8Array(frame.data))).buffer;
            t.decrypted++;
          }
          controller.enqueue(frame);
        } catch {
          // Dropped, never fatal: a frame that fails to open reaches no decoder.
          if (o.side === 'send') this.sendFailures++;
          else t.failures++;
        }
      },
    });
    readable.pipeThrough(transform).pipeTo(writable).catch(() => {});
  }

  stats() {
    return { sent: this.sent, sendFailures: this.sendFailures, tracks: Object.fromEntries(this.tracks) };
  }
}

/** Installs the worker side: messages configure it and bring streams; rtctransform events bring transforms. */
function runWorker() {
  const fc = new FrameCrypto();
  const scope = /** @type {any} */ (self);
  scope.onmessage = (/** @type {MessageEvent} */ e) => {
    const m = e.data;
    if (m.type === 'configure') fc.configure(m);
    else if (m.type === 'streams') fc.attach(m.options, m.readable, m.writable);
    else if (m.type === 'stats') scope.postMessage({ type: 'stats', id: m.id, stats: fc.stats() });
  };
  scope.onrtctransform = (/** @type {any} */ e) => fc.attach(e.transformer.options, e.transformer.readable, e.transformer.writable);
}

const inWorker = typeof WorkerGlobalScope !== 'undefined' && self instanceof WorkerGlobalScope;
if (inWorker) runWorker();

/** Whether the browser has RTCRtpScriptTransform; otherwise the SDK needs createEncodedStreams. */
export const hasScriptTransform = typeof RTCRtpScriptTransform !== 'undefined';

/** Whether this browser can run the SDK's end-to-end encryption at all. */
export function e2eeSupported() {
  return hasScriptTransform || (typeof RTCRtpSender !== 'undefined' && 'createEncodedStreams' in RTCRtpSender.prototype);
}

/** The page side: a worker holding the keys, and the transforms of the page's senders and receivers. */
export class E2EE {
  /**
   * @param {{secret: Uint8Array, suite: number, generation?: number}} cfg
   * @param {string | URL} moduleURL the SDK module, loaded again as the worker
   */
  constructor(cfg, moduleURL) {
    this.worker = new Worker(moduleURL, { type: 'module', name: 'stoa-e2ee' });
    const secret = cfg.secret.slice();
    this.worker.postMessage({ type: 'configure', suite: cfg.suite, secret, generation: cfg.generation ?? 0 }, [secret.buffer]);
    this.nextID = 1;
    /** @type {Map<number, (s: any) => void>} */ this.waiting = new Map();
    this.worker.onmessage = (e) => {
      const done = this.waiting.get(e.data.id);
      this.waiting.delete(e.data.id);
      if (done) done(e.data.stats);
    };
  }

  /**
   * Seals or opens the frames of sender or receiver.
   * @param {RTCRtpSender | RTCRtpReceiver} endpoint
   * @param {{side: 'send'|'recv', kind: string, track?: string, uid?: string}} options
   */
  attach(endpoint, options) {
    const ep = /** @type {any} */ (endpoint);
    if (hasScriptTransform) {
      ep.transform = new RTCRtpScriptTransform(this.worker, options);
      return;
    }
    const { readable, writable } = ep.createEncodedStreams();
    this.worker.postMessage({ type: 'streams', options, readable, writable }, [readable, writable]);
  }

  /** The worker's counters: frames sent, and per remote track frames decrypted and failures. */
  stats() {
    const id = this.nextID++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.worker.postMessage({ type: 'stats', id });
    });
  }

  close() {
    this.worker.terminate();
  }
}
