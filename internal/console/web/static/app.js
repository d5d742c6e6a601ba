// Stoa console: the only script. Forms with data-api are sent to the REST API as JSON with the session's CSRF
// token; data-then says what happens on success: "reload", "show" (fill the form's <output> from the answer's
// fields) or a local path to go to. Errors are shown in the form's role=alert element.
'use strict';
(() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || '';
  // sameOrigin returns the URL that p leads to if it stays on this page's origin, else null. The browser's own
  // parser decides, as it will when following p: it drops tabs and newlines and reads backslashes as slashes, so
  // that "/\t/evil.example" is another host.
  const sameOrigin = (p) => {
    try {
      const u = new URL(p, location.href);
      return u.origin === location.origin ? u : null;
    } catch (_) { return null; }
  };

  function fields(form) {
    const out = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled) continue;
      if (el.type === 'checkbox') out[el.name] = el.checked;
      else if (el.type === 'number' || el.dataset.type === 'number') { if (el.value !== '') out[el.name] = Number(el.value); }
      else if (el.value !== '') out[el.name] = el.value;
    }
    return out;
  }

  function fail(form, message) {
    const err = form.querySelector('.error');
    if (err) { err.textContent = message; err.hidden = false; } else { alert(message); }
  }

  function done(form, data) {
    const then = form.dataset.then || 'reload';
    if (then === 'reload') { location.reload(); return; }
    if (then !== 'show') { location.assign(sameOrigin(then)?.href ?? '/console/'); return; }
    const out = form.querySelector('output.result');
    if (!out) return;
    for (const el of out.querySelectorAll('[data-field]')) {
      const v = data[el.dataset.field] ?? '';
      if ('value' in el && el.tagName !== 'OUTPUT') el.value = v; else el.textContent = v;
      const dd = el.closest('dd');
      if (dd && dd.previousElementSibling?.tagName === 'DT') dd.hidden = dd.previousElementSibling.hidden = v === '';
    }
    for (const a of out.querySelectorAll('[data-field-href]')) a.href = a.dataset.fieldHref.replace('{id}', encodeURIComponent(data.id ?? ''));
    out.hidden = false;
  }

  document.addEventListener('submit', async (ev) => {
    const form = ev.target;
    if (!form.dataset.api) return;
    ev.preventDefault();
    if (form.dataset.confirm && !confirm(form.dataset.confirm)) return;
    const method = form.dataset.method || 'POST';
    const headers = { 'Accept': 'application/json' };
    if (csrf()) headers['X-CSRF-Token'] = csrf();
    if (form.dataset.etag) headers['If-Match'] = form.dataset.etag;
    const init = { method, headers, credentials: 'same-origin' };
    if (method !== 'GET') { headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(fields(form)); }
    const err = form.querySelector('.error');
    if (err) err.hidden = true;
    const button = form.querySelector('[type=submit]');
    if (button) button.disabled = true;
    try {
      const res = await fetch(form.dataset.api, init);
      const text = await res.text();
      let data = {};
      try { data = text ? JSON.parse(text) : {}; } catch (_) { /* not JSON */ }
      if (!res.ok) {
        const e = data.error || { code: 'http_' + res.status, message: res.status + ' ' + res.statusText };
        const totp = form.querySelector('.totp');
        if (totp && (e.code === 'totp_required' || e.code === 'invalid_totp')) {
          totp.hidden = false;
          totp.querySelector('input').disabled = false;
          totp.querySelector('input').focus();
        }
        fail(form, e.message);
        return;
      }
      done(form, data);
    } catch (e) {
      fail(form, 'The console did not answer: ' + e.message);
    } finally {
      if (button) button.disabled = false;
    }
  });
})();
