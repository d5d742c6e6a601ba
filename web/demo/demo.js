// The demo app of stoa dev: join a channel with camera and microphone, see everyone in a grid. Parameters come from
// the URL fragment (#channel=C&uid=U&secret=HEX64&publish=audio,video&autojoin=1), which never reaches a server;
// the token comes from stoa dev's loopback-only token endpoint for its demo project.

import { connect, toHex } from '/sdk/stoa.js';

const $ = (/** @type {string} */ s) => /** @type {HTMLElement} */ (document.querySelector(s));
const form = /** @type {HTMLFormElement} */ ($('#join'));
const params = new URLSearchParams(location.hash.slice(1));
/** @type {import('/sdk/stoa.js').Client | null} */
let client = null;
let joined = false;

for (const name of ['channel', 'uid', 'secret']) {
  const v = params.get(name);
  if (v) /** @type {HTMLInputElement} */ (form.elements.namedItem(name)).value = v;
}
const field = (/** @type {string} */ n) => /** @type {HTMLInputElement} */ (form.elements.namedItem(n));
if (!field('uid').value) field('uid').value = 'guest-' + toHex(crypto.getRandomValues(new Uint8Array(3)));
if (!field('secret').value) field('secret').value = toHex(crypto.getRandomValues(new Uint8Array(32)));
if (params.has('publish')) {
  const publish = (params.get('publish') || '').split(',');
  field('audio').checked = publish.includes('audio');
  field('video').checked = publish.includes('video');
}

/** @param {string} text */
function status(text) {
  $('#status').textContent = text;
}

/** @param {string} uid */
function tile(uid) {
  let fig = /** @type {HTMLElement | null} */ (document.getElementById('p-' + uid));
  if (!fig) {
    fig = document.createElement('figure');
    fig.id = 'p-' + uid;
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    const cap = document.createElement('figcaption');
    cap.textContent = uid;
    fig.append(video, cap);
    $('#grid').append(fig);
  }
  return /** @type {HTMLVideoElement} */ (fig.querySelector('video'));
}

async function join() {
  const channel = field('channel').value, uid = field('uid').value, secret = field('secret').value;
  status('joining…');
  const resp = await fetch(`/demo/token?channel=${encodeURIComponent(channel)}&uid=${encodeURIComponent(uid)}`);
  if (!resp.ok) throw new Error(`token: ${resp.status} ${await resp.text()}`);
  const { app_id: appId, token } = await resp.json();
  const started = performance.now();
  client = await connect({ url: location.origin, appId, channel, uid, token, e2ee: { secret } });
  joined = true;
  client.addEventListener('track', (/** @type {any} */ e) => {
    const video = tile(e.detail.uid);
    const stream = /** @type {MediaStream} */ (video.srcObject) || new MediaStream();
    stream.addTrack(e.detail.track);
    video.srcObject = stream;
  });
  client.addEventListener('participant-left', (/** @type {any} */ e) => document.getElementById('p-' + e.detail.uid)?.remove());
  client.addEventListener('connection-state', (/** @type {any} */ e) => status(`${e.detail.state} ${e.detail.edge || ''}`));
  const mine = tile(uid + ' (you)');
  mine.muted = true;
  const local = new MediaStream();
  for (const kind of /** @type {const} */ (['audio', 'video'])) {
    if (!field(kind).checked) continue;
    const media = await navigator.mediaDevices.getUserMedia({ [kind]: true });
    const track = media.getTracks()[0];
    local.addTrack(track);
    await client.publish(track);
  }
  mine.srcObject = local;
  status(`joined ${channel} as ${uid} on ${client.edges[client.edgeIndex].id} in ${Math.round(performance.now() - started)} ms`);
  const share = new URL(location.href);
  share.hash = new URLSearchParams({ channel, secret, publish: 'audio,video', autojoin: '1' }).toString();
  /** @type {HTMLAnchorElement} */ ($('#share-link')).href = share.href;
  $('#share').hidden = false;
  form.hidden = true;
  setInterval(indicator, 1000);
}

/** The indicator is on only while other participants' frames decrypt, and red when some fail. */
async function indicator() {
  const s = await stats();
  const ok = s.remote.some((r) => r.frames_decoded > 0);
  const bad = s.remote.some((r) => r.decrypt_failures > 0 && r.frames_decoded === 0);
  const el = $('#e2ee');
  el.className = bad ? 'bad' : ok ? 'on' : 'off';
  el.textContent = bad ? 'end-to-end encrypted: frames fail to decrypt (another secret?)' : ok ? 'end-to-end encrypted' : 'end-to-end encrypted: not yet';
}

/** What checks outside the project read: {joined, remote: [{uid, kind, frames_decoded, decrypt_failures}]}. */
async function stats() {
  if (!client) return { joined, remote: [] };
  const s = await client.getStats();
  return { joined, remote: s.remote.map((r) => ({ uid: r.uid, kind: r.kind, frames_decoded: r.frames_decoded, decrypt_failures: r.decrypt_failures })) };
}

/** @type {any} */ (window).stoaDemo = { stats, client: () => client };

form.addEventListener('submit', (e) => {
  e.preventDefault();
  join().catch((err) => status('failed: ' + err.message));
});
if (params.get('autojoin') === '1') join().catch((err) => status('failed: ' + err.message));
