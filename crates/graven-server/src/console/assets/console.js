// Graven console: the browser's own check of an event's place in the log, and the verifier key
// pinned in this browser. Plain JavaScript, no dependency, no build step; WebCrypto does the
// hashing (SHA-256) and the signature check (Ed25519).
//
// What is checked (docs/console.md):
//  1. the checkpoint carries a signature line by the pinned key (its name and key id), and the
//     Ed25519 signature verifies over the checkpoint's text (C2SP signed-note);
//  2. the leaf hash is SHA-256(0x00 || the entry's bytes), computed here from the bytes shown;
//  3. the inclusion proof takes that leaf, at its index, to the checkpoint's root for its size
//     (RFC 9162 section 2.1.3.2).
'use strict';

(function () {
  const PIN = 'graven.vkey';
  const enc = new TextEncoder();

  function fromB64(s) {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function hex(b) {
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }
  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }
  function same(a, b) {
    if (a.length !== b.length) return false;
    let d = 0;
    for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
  }
  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  }

  // A C2SP verifier key: <name>+<key id, 8 hex>+<base64 of 0x01 || Ed25519 public key>.
  async function parseVkey(text) {
    const s = text.trim();
    // The name has no '+'; the base64 key may.
    const i = s.indexOf('+');
    const j = i < 0 ? -1 : s.indexOf('+', i + 1);
    if (j < 0) throw new Error('a verifier key has three parts, name+keyid+base64');
    const [name, idHex, keyB64] = [s.slice(0, i), s.slice(i + 1, j), s.slice(j + 1)];
    if (!name || /[\s+]/.test(name)) throw new Error('the key name is empty or has a space or a plus');
    if (!/^[0-9a-f]{8}$/.test(idHex)) throw new Error('the key id is not 8 lowercase hex digits');
    let raw;
    try { raw = fromB64(keyB64); } catch (e) { throw new Error('the key is not base64'); }
    if (raw.length !== 33 || raw[0] !== 1) throw new Error('not an Ed25519 key (type 0x01 and 32 bytes)');
    const id = (await sha256(concat(enc.encode(name), new Uint8Array([0x0a]), raw))).slice(0, 4);
    if (hex(id) !== idHex) throw new Error('the key id does not match the key (a typo?)');
    const key = await crypto.subtle.importKey('raw', raw.slice(1), { name: 'Ed25519' }, false, ['verify']);
    return { text: s, name, id, key };
  }

  // A signed checkpoint: checks the pinned key's signature, then reads origin, size and root.
  async function checkCheckpoint(note, vk) {
    const cut = note.indexOf('\n\n');
    if (cut < 0) throw new Error('the checkpoint has no signature block');
    const body = note.slice(0, cut + 1);
    const lines = note.slice(cut + 2).split('\n').filter((l) => l.length > 0);
    let signed = false;
    for (const line of lines) {
      if (!line.startsWith('\u2014 ')) throw new Error('a signature line does not start with an em dash');
      const [name, sigB64] = line.slice(2).split(' ');
      if (name !== vk.name) continue;
      let sig;
      try { sig = fromB64(sigB64 || ''); } catch (e) { continue; }
      if (sig.length !== 68 || !same(sig.slice(0, 4), vk.id)) continue;
      if (await crypto.subtle.verify({ name: 'Ed25519' }, vk.key, sig.slice(4), enc.encode(body))) {
        signed = true;
        break;
      }
      throw new Error('the signature by the pinned key does not verify: the checkpoint was altered');
    }
    if (!signed) throw new Error('the checkpoint has no signature by the pinned key ' + vk.name);
    const b = body.split('\n');
    if (b.length < 4 || !/^[0-9]+$/.test(b[1])) throw new Error('the checkpoint body is not origin, size, root');
    const root = fromB64(b[2]);
    if (root.length !== 32) throw new Error('the checkpoint root is not 32 bytes');
    return { origin: b[0], size: BigInt(b[1]), root };
  }

  // RFC 9162 2.1.3.2: the root an inclusion proof leads to, or null if it cannot.
  async function rootFromProof(index, size, leaf, proof) {
    if (index >= size) return null;
    let fn = index;
    let sn = size - 1n;
    let r = leaf;
    for (const p of proof) {
      if (sn === 0n) return null;
      if ((fn & 1n) === 1n || fn === sn) {
        r = await sha256(concat(new Uint8Array([1]), p, r));
        if ((fn & 1n) === 0n) {
          while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
        }
      } else {
        r = await sha256(concat(new Uint8Array([1]), r, p));
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    return sn === 0n ? r : null;
  }

  // One line of the check: passed (true), failed (false), or not checked (null).
  function item(list, ok, words) {
    const li = document.createElement('li');
    li.className = ok === null ? 'unchecked' : ok ? 'ok' : 'fail';
    li.textContent = (ok === null ? '\u2013 ' : ok ? '\u2713 ' : '\u2717 ') + words;
    list.appendChild(li);
  }

  async function checkEvent(box) {
    const verdict = document.getElementById('verdict');
    const list = document.getElementById('checks');
    const say = (cls, words) => { verdict.className = cls; verdict.textContent = words; };
    if (!window.isSecureContext || !window.crypto || !crypto.subtle) {
      say('fail', 'Not checked: this page is not a secure context (open the console over HTTPS), so the browser offers no WebCrypto.');
      return;
    }
    const pinned = localStorage.getItem(PIN);
    if (!pinned) {
      say('unchecked', 'Not checked: no verifier key is pinned in this browser. Pin the log\u2019s key under \u201cVerifier key\u201d.');
      return;
    }
    try {
      const vk = await parseVkey(pinned);
      const index = BigInt(box.dataset.index);
      const size = BigInt(box.dataset.size);
      const entry = fromB64(box.dataset.entry);
      const proof = box.dataset.proof ? box.dataset.proof.split(',').map(fromB64) : [];
      const note = new TextDecoder().decode(fromB64(box.dataset.checkpoint));
      const cp = await checkCheckpoint(note, vk);
      item(list, true, 'The checkpoint is signed by the key you pinned (' + vk.name + ', key id ' + hex(vk.id) + ').');
      if (cp.size !== size) throw new Error('the checkpoint is for size ' + cp.size + ', the page says ' + size);
      const leaf = await sha256(concat(new Uint8Array([0]), entry));
      item(list, true, 'Leaf hash computed in this browser from the entry shown: ' + btoa(String.fromCharCode(...leaf)));
      const root = await rootFromProof(index, size, leaf, proof);
      if (root === null || !same(root, cp.root)) {
        item(list, false, 'The inclusion proof does not lead from this entry to the signed root: the entry or the log was altered.');
        say('fail', 'FAILED: event ' + index + ' is not the entry the signed checkpoint commits to.');
        return;
      }
      item(list, true, 'The inclusion proof leads from this entry, at index ' + index + ', to the root of the signed tree of size ' + size + '.');
      item(list, null, 'Not checked here: that this checkpoint is consistent with ones seen before (graven verify with a trust directory does), witness cosignatures, and whether what the event says is true.');
      say('ok', 'Verified: event ' + index + ' is in the log signed by ' + vk.name + '.');
    } catch (e) {
      item(list, false, String(e && e.message ? e.message : e));
      say('fail', 'FAILED: ' + (e && e.message ? e.message : e));
    }
  }

  function settings() {
    const form = document.getElementById('pin-form');
    const input = document.getElementById('vkey');
    const shown = document.getElementById('pinned');
    const show = () => {
      const v = localStorage.getItem(PIN);
      shown.textContent = v ? 'Pinned in this browser: ' + v : 'No key pinned in this browser.';
    };
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        const vk = await parseVkey(input.value);
        localStorage.setItem(PIN, vk.text);
        show();
      } catch (e) {
        shown.textContent = 'Not pinned: ' + e.message;
      }
    });
    document.getElementById('unpin').addEventListener('click', () => { localStorage.removeItem(PIN); show(); });
    show();
  }

  document.addEventListener('DOMContentLoaded', () => {
    const box = document.getElementById('proof-check');
    if (box) checkEvent(box);
    if (document.getElementById('pin-form')) settings();
  });
})();
