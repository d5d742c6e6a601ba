// The browser client of a Stoa network, following the Go SDK (sdk/) and docs/protocol.md: POST /v1/dispatch, then
// one edge's signaling WebSocket, a publisher peer connection the page offers and a subscriber connection the edge
// offers, with every media frame and data message end-to-end encrypted (e2ee.js, media.js).

import { E2EE, e2eeSupported } from './e2ee.js';
import { Codec, MediaReceiver, MediaSender, newKID } from './media.js';
import { DEFAULT_SUITE, fromHex } from './sframe.js';

/** A failure with the protocol's error code (docs/protocol.md), or a client-side one. */
export class StoaError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.name = 'StoaError';
    this.code = code;
  }
}

/**
 * @typedef {object} ConnectOptions
 * @property {string} url the network's entry point (the dispatcher), e.g. "http://127.0.0.1:7880"
 * @property {string} appId
 * @property {string} channel
 * @property {string} uid
 * @property {string} token an AccessToken2 for (appId, channel, uid)
 * @property {{secret: string | Uint8Array, suite?: number, generation?: number}} e2ee the channel secret (64 hex
 *   digits or 32 bytes), shared out of band by every member; the network never sees it
 * @property {string} [region]
 * @property {number} [requestTimeout] ms, default 10000
 */

const PROTOCOL_VERSION = 1;
const PING_EVERY = 10000;

/**
 * Connects to a channel: resolves once joined on one of the edges the dispatcher offers.
 * @param {ConnectOptions} opts
 */
export async function connect(opts) {
  const c = new Client(opts);
  await c.join();
  return c;
}

/**
 * A member of a channel. Events (EventTarget, detail in event.detail): "participant-joined" {uid},
 * "participant-left" {uid, reason}, "track-published" {id, uid, kind}, "track-unpublished" {id},
 * "track" {id, uid, kind, track, stream} (a remote track to play), "data" {uid, track, data},
 * "connection-state" {state: "connecting"|"connected"|"reconnecting"|"disconnected", edge?},
 * "privilege-will-expire" {privilege, name, expires_at}, "removed" {reason, message}.
 */
export class Client extends EventTarget {
  /** @param {ConnectOptions} opts */
  constructor(opts) {
    super();
    for (const k of /** @type {const} */ (['url', 'appId', 'channel', 'uid', 'token'])) {
      if (typeof opts[k] !== 'string' || opts[k] === '') throw new StoaError('bad_request', `connect: ${k} is required`);
    }
    if (!opts.e2ee || !opts.e2ee.secret) throw new StoaError('bad_request', 'connect: e2ee.secret is required: Stoa always encrypts end to end');
    if (!e2eeSupported()) throw new StoaError('unsupported', 'this browser has no encoded transforms: end-to-end encryption is impossible');
    this.opts = opts;
    const secret = typeof opts.e2ee.secret === 'string' ? fromHex(opts.e2ee.secret) : opts.e2ee.secret.slice();
    this.suite = opts.e2ee.suite ?? DEFAULT_SUITE;
    this.generation = opts.e2ee.generation ?? 0;
    this.secret = secret;
    this.timeout = opts.requestTimeout ?? 10000;
    /** @type {{id: string, region: string, url: string}[]} */ this.edges = [];
    this.ticket = '';
    this.edgeIndex = 0;
    /** @type {Map<string, {uid: string, kind: string}>} */ this.remoteTracks = new Map();
    /** @type {Map<string, {kind: string, track?: MediaStreamTrack, channel?: RTCDataChannel}>} */ this.local = new Map();
    /** @type {Map<string, {tracks: Set<string>}>} */ this.participants = new Map();
    this.state = 'disconnected';
    /** @type {Promise<any>} */ this.negotiating = Promise.resolve();
    this.closed = false;
    this.data = { sender: MediaSender.create(this.suite, secret, newKID(this.generation)), receiver: new MediaReceiver(this.suite) };
    this.data.receiver.addSecret(this.generation, secret);
  }

  /** @param {string} type @param {any} [detail] */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** @param {string} state @param {string} [edge] */
  setState(state, edge) {
    this.state = state;
    this.emit('connection-state', { state, edge });
  }

  /** Dispatches, then joins the first edge that accepts; on a lost edge, fails over to the others. */
  async join() {
    this.setState('connecting');
    const resp = await fetch(new URL('/v1/dispatch', this.opts.url), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ app_id: this.opts.appId, channel: this.opts.channel, uid: this.opts.uid, token: this.opts.token, region: this.opts.region }),
    });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new StoaError(body.error?.code || 'dispatch_failed', body.error?.message || `dispatch: HTTP ${resp.status}`);
    this.edges = body.edges;
    this.ticket = body.ticket;
    this.e2ee = new E2EE({ secret: this.secret, suite: this.suite, generation: this.generation }, import.meta.url);
    await this.connectAny(0);
  }

  /** Joins the edges in order from index start, wrapping around once. @param {number} start */
  async connectAny(start) {
    let last;
    for (let i = 0; i < this.edges.length; i++) {
      const idx = (start + i) % this.edges.length;
      try {
        await this.connectEdge(idx);
        return;
      } catch (e) {
        last = e;
        if (e instanceof StoaError && ['invalid_token', 'token_expired', 'unknown_app', 'replaced'].includes(e.code)) break;
      }
    }
    this.setState('disconnected');
    throw last ?? new StoaError('no_edges', 'no edge to join');
  }

  /** @param {number} idx */
  async connectEdge(idx) {
    const edge = this.edges[idx];
    this.teardown();
    const s = new Session(this, edge);
    this.session = s;
    await s.open(this.timeout);
    const joined = await s.request('join', { version: PROTOCOL_VERSION, token: this.opts.token, app_id: this.opts.appId,
      channel: this.opts.channel, uid: this.opts.uid, ticket: this.ticket, client: 'stoa-js/0.1' });
    this.edgeIndex = idx;
    s.joined = true;
    this.participants.clear();
    for (const p of joined.joined.participants || []) this.onParticipant(p);
    // Publications of a previous edge are made again on this one.
    const previous = [...this.local.values()];
    this.local.clear();
    this.setState('connected', edge.id);
    for (const l of previous) await this.publish(l.kind === 'data' ? 'data' : /** @type {MediaStreamTrack} */ (l.track));
  }

  teardown() {
    if (this.session) this.session.close();
    this.session = undefined;
  }

  /** Called by a session that ended without leave: fail over to the next edge. @param {Session} s */
  onSessionLost(s) {
    if (this.closed || s !== this.session || !s.joined) return;
    this.setState('reconnecting');
    this.connectAny(this.edgeIndex + 1).catch((e) => this.emit('error', e));
  }

  /** @param {{uid: string, tracks?: {id: string, uid: string, kind: string}[]}} p */
  onParticipant(p) {
    this.participants.set(p.uid, { tracks: new Set() });
    for (const t of p.tracks || []) this.onTrackPublished(t);
    this.emit('participant-joined', { uid: p.uid });
  }

  /** @param {{id: string, uid: string, kind: string}} t */
  onTrackPublished(t) {
    this.remoteTracks.set(t.id, { uid: t.uid, kind: t.kind });
    this.participants.get(t.uid)?.tracks.add(t.id);
    this.emit('track-published', t);
  }

  /**
   * Publishes a track: "audio" or "video" (the default microphone or camera), a MediaStreamTrack, or "data".
   * Resolves to the track id the edge gave it.
   * @param {'audio'|'video'|'data'|MediaStreamTrack} what
   */
  async publish(what) {
    const s = this.requireSession();
    let track;
    if (what === 'audio' || what === 'video') {
      const media = await navigator.mediaDevices.getUserMedia({ [what]: true });
      track = media.getTracks()[0];
    } else if (what !== 'data') {
      track = what;
    }
    const kind = track ? track.kind : 'data';
    const ok = await s.request('publish', { kind });
    const id = ok.ok.track_id;
    if (!track) {
      const channel = s.pub.createDataChannel(id);
      this.local.set(id, { kind, channel });
    } else {
      const tr = s.pub.addTransceiver(track, { direction: 'sendonly' });
      /** @type {E2EE} */ (this.e2ee).attach(tr.sender, { side: 'send', kind });
      this.local.set(id, { kind, track });
      s.mids.set(tr, id);
    }
    await s.negotiate();
    return id;
  }

  /** Stops a publication. @param {string} id */
  async unpublish(id) {
    const s = this.requireSession();
    const l = this.local.get(id);
    if (!l) throw new StoaError('unknown_track', `no local track ${id}`);
    await s.request('unpublish', { track_id: id });
    this.local.delete(id);
    if (l.channel) l.channel.close();
    for (const [tr, tid] of s.mids) {
      if (tid === id) {
        tr.sender.track?.stop();
        tr.stop();
        s.mids.delete(tr);
      }
    }
    await s.negotiate();
  }

  /** Mutes or unmutes a local track: the track is disabled (silence or black frames keep flowing). @param {string} id @param {boolean} muted */
  setMuted(id, muted) {
    const l = this.local.get(id);
    if (l && l.track) l.track.enabled = !muted;
  }

  /** Subscribes to a remote track (auto-subscribe is on by default). @param {string} id */
  subscribe(id) {
    return this.requireSession().request('subscribe', { track_id: id });
  }

  /** @param {string} id */
  unsubscribe(id) {
    return this.requireSession().request('unsubscribe', { track_id: id });
  }

  /**
   * Sends a data message (at most 16 KiB once encrypted) on the data track id from publish("data").
   * @param {string} id
   * @param {Uint8Array | string} message
   */
  async send(id, message) {
    const l = this.local.get(id);
    if (!l || !l.channel) throw new StoaError('unknown_track', `no data track ${id}`);
    const bytes = typeof message === 'string' ? new TextEncoder().encode(message) : message;
    const wire = await (await this.data.sender).seal(Codec.DATA, bytes);
    l.channel.send(wire);
  }

  /** Renews the token. @param {string} token */
  async renew(token) {
    const r = await this.requireSession().request('renew', { token });
    this.opts.token = token;
    return r.renewed;
  }

  /**
   * The call's statistics: per remote track its uid, kind, frames decoded (video: the decoder's count; audio: the
   * frames the decrypting transform handed to the decoder) and decrypt failures; and the frames this page sent.
   */
  async getStats() {
    const s = this.session;
    const crypto = await /** @type {E2EE} */ (this.e2ee).stats();
    /** @type {Map<string, number>} */ const decoded = new Map();
    if (s) {
      for (const tr of s.sub.getTransceivers()) {
        const id = s.remoteMids.get(tr.mid || '');
        if (!id || tr.receiver.track.kind !== 'video') continue;
        const report = await tr.receiver.getStats();
        report.forEach((r) => {
          if (r.type === 'inbound-rtp') decoded.set(id, r.framesDecoded || 0);
        });
      }
    }
    const remote = Object.entries(crypto.tracks).map(([id, t]) => ({
      id, uid: t.uid, kind: t.kind,
      frames_decoded: t.kind === 'video' ? decoded.get(id) ?? 0 : t.decrypted,
      frames_decrypted: t.decrypted, decrypt_failures: t.failures,
    }));
    return { state: this.state, edge: this.edges[this.edgeIndex]?.id, frames_sent: crypto.sent, remote,
      data: { ...this.data.receiver.stats } };
  }

  /** Leaves the channel and releases everything. */
  async leave() {
    this.closed = true;
    const s = this.session;
    if (s) s.send({ type: 'leave' });
    for (const l of this.local.values()) l.track?.stop();
    this.teardown();
    this.e2ee?.close();
    this.secret.fill(0);
    this.setState('disconnected');
  }

  requireSession() {
    if (!this.session || this.state !== 'connected') throw new StoaError('not_joined', 'not connected');
    return this.session;
  }
}

/** One edge's signaling socket and the two peer connections. */
class Session {
  /** @param {Client} c @param {{id: string, url: string}} edge */
  constructor(c, edge) {
    this.c = c;
    this.edge = edge;
    this.nextID = 1;
    /** @type {Map<number, {resolve: (m: any) => void, reject: (e: Error) => void}>} */ this.pending = new Map();
    const encoded = !('RTCRtpScriptTransform' in globalThis);
    const config = /** @type {RTCConfiguration} */ ({ encodedInsertableStreams: encoded });
    this.pub = new RTCPeerConnection(config);
    this.sub = new RTCPeerConnection(config);
    /** @type {Map<RTCRtpTransceiver, string>} */ this.mids = new Map(); // publisher transceivers → track ids
    /** @type {Map<string, string>} */ this.remoteMids = new Map(); // subscriber mids → track ids
    /** @type {Promise<any>} */ this.offers = Promise.resolve();
    this.ended = false;
    this.joined = false; // a session lost before its join is the joining code's failure, not a failover
    this.sub.ontrack = (e) => this.onTrack(e);
    this.sub.ondatachannel = (e) => this.onDataChannel(e.channel);
    for (const pc of [this.pub, this.sub]) {
      pc.onconnectionstatechange = () => {
        if (pc.connectionState === 'failed') this.lost();
      };
    }
  }

  /** @param {number} timeout */
  open(timeout) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.edge.url);
      this.ws = ws;
      const timer = setTimeout(() => reject(new StoaError('timeout', `edge ${this.edge.id} did not answer`)), timeout);
      ws.onopen = () => {
        clearTimeout(timer);
        resolve(undefined);
      };
      ws.onerror = () => reject(new StoaError('connect_failed', `cannot reach edge ${this.edge.id}`));
      ws.onclose = () => {
        clearTimeout(timer);
        reject(new StoaError('connect_failed', `edge ${this.edge.id} closed the connection`));
        this.lost();
      };
      ws.onmessage = (e) => this.handle(JSON.parse(e.data));
      this.ping = setInterval(() => this.request('ping').catch(() => this.lost()), PING_EVERY);
    });
  }

  /** @param {any} m */
  send(m) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m));
  }

  /**
   * Sends a request with a fresh id; resolves to the edge's answer, rejects with its error.
   * @param {string} type
   * @param {any} [payload]
   * @returns {Promise<any>}
   */
  request(type, payload) {
    const id = this.nextID++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new StoaError('timeout', `${type}: no answer from edge ${this.edge.id}`));
      }, this.c.timeout);
      this.pending.set(id, {
        resolve: (m) => { clearTimeout(timer); resolve(m); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.send(payload === undefined ? { type, id } : { type, id, [type]: payload });
    });
  }

  /** @param {any} m */
  handle(m) {
    const c = this.c;
    if (m.id && this.pending.has(m.id)) {
      const p = /** @type {any} */ (this.pending.get(m.id));
      this.pending.delete(m.id);
      if (m.type === 'error') p.reject(new StoaError(m.error.code, m.error.message));
      else p.resolve(m);
      return;
    }
    switch (m.type) {
      case 'offer':
        this.offers = this.offers.then(() => this.answer(m.offer.sdp)).catch((e) => c.emit('error', e));
        break;
      case 'participant_joined':
        c.onParticipant(m.participant_joined);
        break;
      case 'participant_left':
        c.participants.delete(m.participant_left.uid);
        c.emit('participant-left', m.participant_left);
        break;
      case 'track_published':
        c.onTrackPublished(m.track_published);
        break;
      case 'track_unpublished':
        c.remoteTracks.delete(m.track_unpublished.track_id);
        c.emit('track-unpublished', { id: m.track_unpublished.track_id });
        break;
      case 'privilege_will_expire':
        c.emit('privilege-will-expire', m.privilege_will_expire);
        break;
      case 'privilege_expired':
        c.emit('privilege-expired', m.privilege_expired);
        break;
      case 'removed':
        this.ended = true;
        c.emit('removed', m.removed);
        if (m.removed.reason === 'shutting_down') this.lost(true);
        break;
      case 'error':
        c.emit('error', new StoaError(m.error.code, m.error.message));
        break;
    }
  }

  /** Answers one subscriber offer of the edge. @param {string} sdp */
  async answer(sdp) {
    await this.sub.setRemoteDescription({ type: 'offer', sdp });
    // msid of each m-section: stream id = publisher uid, track id = the announced track id.
    for (const section of sdp.split(/\r?\nm=/).slice(1)) {
      const mid = /a=mid:(\S+)/.exec(section);
      const msid = /a=msid:(\S+) (\S+)/.exec(section);
      if (mid && msid) this.remoteMids.set(mid[1], msid[2]);
    }
    const ans = await this.sub.createAnswer();
    await this.sub.setLocalDescription(ans);
    this.send({ type: 'answer', answer: { sdp: this.sub.localDescription?.sdp } });
  }

  /** @param {RTCTrackEvent} e */
  onTrack(e) {
    const id = this.remoteMids.get(e.transceiver.mid || '') || e.track.id;
    const info = this.c.remoteTracks.get(id);
    const uid = info?.uid || e.streams[0]?.id || '';
    /** @type {E2EE} */ (this.c.e2ee).attach(e.receiver, { side: 'recv', kind: e.track.kind, track: id, uid });
    this.c.emit('track', { id, uid, kind: e.track.kind, track: e.track, stream: e.streams[0] || new MediaStream([e.track]) });
  }

  /** The subscriber's data channel: u8 len(track_id) || track_id || sealed message. @param {RTCDataChannel} ch */
  onDataChannel(ch) {
    ch.binaryType = 'arraybuffer';
    ch.onmessage = async (e) => {
      const b = new Uint8Array(e.data);
      if (b.length < 1 || b[0] === 0 || b[0] > b.length - 1) return;
      const track = new TextDecoder().decode(b.subarray(1, 1 + b[0]));
      try {
        const data = await this.c.data.receiver.open(Codec.DATA, b.subarray(1 + b[0]));
        this.c.emit('data', { uid: this.c.remoteTracks.get(track)?.uid, track, data });
      } catch {
        // counted by the receiver
      }
    };
  }

  /** Offers the publisher connection's state to the edge, one negotiation at a time. */
  negotiate() {
    const run = async () => {
      const offer = await this.pub.createOffer();
      await this.pub.setLocalDescription(offer);
      const ans = await this.request('offer', { sdp: this.mungeMsid(this.pub.localDescription?.sdp || '') });
      await this.pub.setRemoteDescription({ type: 'answer', sdp: ans.answer.sdp });
    };
    const next = this.c.negotiating.then(run, run);
    this.c.negotiating = next.catch(() => {});
    return next;
  }

  /**
   * The edge knows a publication by the msid of its m-section (stream id = uid, track id = the track id it gave),
   * which a page cannot choose for its tracks: the offer sent to the edge carries those ids instead.
   * @param {string} sdp
   */
  mungeMsid(sdp) {
    /** @type {Map<string, string>} */ const byMid = new Map();
    for (const [tr, id] of this.mids) if (tr.mid) byMid.set(tr.mid, id);
    const [head, ...sections] = sdp.split(/\r\nm=/);
    return [head, ...sections.map((sec) => {
      const mid = /a=mid:(\S+)/.exec(sec);
      const id = mid && byMid.get(mid[1]);
      if (!id) return sec;
      const msid = `${this.c.opts.uid} ${id}`;
      return sec.replace(/a=msid:\S+ \S+/, `a=msid:${msid}`).replace(/(a=ssrc:\d+ msid:)\S+ \S+/g, `$1${msid}`);
    })].join('\r\nm=');
  }

  /** @param {boolean} [force] */
  lost(force) {
    if (this.ended && !force) return;
    this.ended = true;
    this.close();
    this.c.onSessionLost(this);
  }

  close() {
    clearInterval(this.ping);
    for (const p of this.pending.values()) p.reject(new StoaError('left', 'the session ended'));
    this.pending.clear();
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
    }
    this.pub.close();
    this.sub.close();
  }
}
