// Junction dashboard: a client of the broker's JSON API (/api), with the user's basic-auth
// credentials kept in sessionStorage. No framework and no external asset: the charts are
// drawn on <canvas> below.
'use strict';

(() => {
  const AUTH_KEY = 'junction.auth';
  const REFRESH_MS = 1000;
  const HISTORY = 120; // samples kept for the charts (two minutes at one a second)
  const COLORS = {
    publish: '#0f6fde', deliver: '#1f9d55', ack: '#8a5cf6', redeliver: '#d98a00',
    ready: '#0f6fde', unacked: '#d0343a',
  };
  const TITLES = {
    overview: 'Overview', connections: 'Connections', queues: 'Queues',
    exchanges: 'Exchanges', messages: 'Publish & get', mqtt: 'MQTT',
  };

  const $ = (id) => document.getElementById(id);
  let auth = sessionStorage.getItem(AUTH_KEY);
  let view = 'overview';
  let timer = null;
  let generation = 0;
  const hist = { t: [], publish: [], deliver: [], ack: [], redeliver: [], ready: [], unacked: [] };

  // ---- helpers -------------------------------------------------------------------------

  /** Builds an element: h('td', {class: 'num'}, 'text', childNode). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  const fmtInt = (n) => (Number(n) || 0).toLocaleString('en-US');
  const fmtRate = (r) => (Number(r) || 0).toFixed(1) + '/s';
  function fmtBytes(n) {
    n = Number(n) || 0;
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
  }
  function fmtAge(ms) {
    const s = Math.max(0, Math.floor((Date.now() - ms) / 1000));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
    return Math.floor(s / 86400) + ' d';
  }
  const fmtTime = (ms) => new Date(ms).toLocaleString();
  const enc = encodeURIComponent;
  const badge = (text, cls) => h('span', { class: 'badge ' + (cls || '') }, text);

  function toBase64(text) {
    let bin = '';
    for (const b of new TextEncoder().encode(text)) bin += String.fromCharCode(b);
    return btoa(bin);
  }

  function toast(text, bad) {
    const t = h('div', { class: 'toast' + (bad ? ' bad' : '') }, text);
    $('toasts').append(t);
    setTimeout(() => t.remove(), bad ? 7000 : 3500);
  }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  /** Calls the API as the signed-in user; rejects with ApiError on an error answer. */
  async function api(method, path, body, extraHeaders) {
    const headers = Object.assign({
      'Authorization': 'Basic ' + auth,
      // Asks the API not to send a WWW-Authenticate challenge (no browser login prompt).
      'X-Requested-With': 'XMLHttpRequest',
    }, extraHeaders || {});
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
    if (!res.ok) {
      const reason = json && json.reason ? json.reason : res.status + ' ' + res.statusText;
      if (res.status === 401 && path !== '/api/whoami') signOut('Signed out: ' + reason);
      throw new ApiError(res.status, reason);
    }
    return json;
  }

  function confirmDialog(title, text, okLabel, withReason) {
    return new Promise((resolve) => {
      $('modal-title').textContent = title;
      $('modal-text').textContent = text;
      $('modal-ok').textContent = okLabel;
      $('modal-input-label').hidden = !withReason;
      $('modal-input').value = '';
      $('modal').hidden = false;
      const done = (ok) => {
        $('modal').hidden = true;
        $('modal-form').onsubmit = null;
        $('modal-cancel').onclick = null;
        resolve(ok ? { reason: $('modal-input').value } : null);
      };
      $('modal-form').onsubmit = (e) => { e.preventDefault(); done(true); };
      $('modal-cancel').onclick = () => done(false);
      (withReason ? $('modal-input') : $('modal-ok')).focus();
    });
  }

  // ---- keyed tables ----------------------------------------------------------------------
  // A column: {title, num, field, value(row) -> string | Node, once}. Rows are kept by key and
  // only the cells whose content changed are touched, so a refresh every second neither
  // flickers nor steals a click.

  function renderTable(table, columns, rows, keyOf, rowAttrs, emptyText) {
    if (!table.tHead) {
      table.append(h('thead', {}, h('tr', {}, columns.map((c) =>
        h('th', { class: c.num ? 'num' : '' }, c.title)))));
      table.append(h('tbody'));
    }
    const body = table.tBodies[0];
    const filter = (table.dataset.filter || '').toLowerCase();
    const seen = new Set();
    let previous = null;
    for (const row of rows) {
      const key = keyOf(row);
      if (filter && !key.toLowerCase().includes(filter)) continue;
      seen.add(key);
      let tr = body.querySelector(`tr[data-key="${CSS.escape(key)}"]`);
      if (!tr) {
        tr = h('tr', Object.assign({ 'data-key': key }, rowAttrs ? rowAttrs(row) : {}));
        for (const c of columns) {
          tr.append(h('td', { class: (c.num ? 'num ' : '') + (c.cls || ''), 'data-field': c.field }));
        }
      }
      columns.forEach((c, i) => {
        const td = tr.cells[i];
        if (c.once && td.dataset.done) return;
        const v = c.value(row);
        const sig = v instanceof Node ? v.outerHTML : String(v);
        if (td.dataset.sig === sig) return;
        td.dataset.sig = sig;
        td.replaceChildren(v instanceof Node ? v : document.createTextNode(String(v)));
        if (c.once) td.dataset.done = '1';
      });
      const at = previous ? previous.nextSibling : body.firstChild;
      if (at !== tr) body.insertBefore(tr, at);
      previous = tr;
    }
    for (const tr of Array.from(body.rows)) {
      // Rows gone from the answer, and the "nothing here" row once there is something.
      if (tr.dataset.key === undefined || !seen.has(tr.dataset.key)) tr.remove();
    }
    if (seen.size === 0) {
      body.replaceChildren(h('tr', {}, h('td', { class: 'empty', colspan: columns.length },
        filter ? 'Nothing matches the filter.' : emptyText)));
    }
  }

  function resetTable(id) {
    const t = $(id);
    t.replaceChildren();
  }

  // ---- charts ----------------------------------------------------------------------------

  function niceMax(v) {
    if (v <= 1) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  /** Draws time series (same length as `times`) as lines, with a legend of current values. */
  function drawChart(canvas, times, series, format) {
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || 600;
    const cssH = canvas.clientHeight || 220;
    if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
      canvas.width = Math.round(cssW * dpr);
      canvas.height = Math.round(cssH * dpr);
    }
    const g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, cssW, cssH);
    g.font = '12px system-ui, sans-serif';
    const left = 52, right = 10, top = 30, bottom = 22;
    const w = cssW - left - right, hgt = cssH - top - bottom;
    let max = 0;
    for (const s of series) for (const v of s.values) max = Math.max(max, v);
    max = niceMax(max);
    // grid and y labels
    g.strokeStyle = '#e6ebf2';
    g.fillStyle = '#6b7688';
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (let i = 0; i <= 4; i++) {
      const y = top + hgt - (hgt * i) / 4;
      g.beginPath(); g.moveTo(left, Math.round(y) + 0.5); g.lineTo(left + w, Math.round(y) + 0.5); g.stroke();
      const v = (max * i) / 4;
      g.fillText(Number.isInteger(v) ? fmtInt(v) : v.toFixed(1), left - 6, y);
    }
    // x labels: seconds before now
    const now = times.length ? times[times.length - 1] : Date.now();
    const span = HISTORY * (REFRESH_MS / 1000);
    g.textAlign = 'center';
    g.textBaseline = 'top';
    for (const ago of [120, 90, 60, 30, 0]) {
      if (ago > span) continue;
      const x = left + w - (w * ago) / span;
      g.fillText(ago === 0 ? 'now' : '-' + ago + ' s', x, top + hgt + 6);
    }
    // lines
    const xOf = (t) => left + w - (w * Math.min(span, (now - t) / 1000)) / span;
    const yOf = (v) => top + hgt - (hgt * v) / max;
    for (const s of series) {
      if (!s.values.length) continue;
      g.strokeStyle = s.color;
      g.lineWidth = 2;
      g.lineJoin = 'round';
      g.beginPath();
      s.values.forEach((v, i) => {
        const x = xOf(times[i]), y = yOf(v);
        if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
      });
      g.stroke();
      if (s.fill) {
        g.lineTo(xOf(times[times.length - 1]), top + hgt);
        g.lineTo(xOf(times[0]), top + hgt);
        g.closePath();
        g.globalAlpha = 0.08;
        g.fillStyle = s.color;
        g.fill();
        g.globalAlpha = 1;
      }
    }
    // legend
    g.textAlign = 'left';
    g.textBaseline = 'middle';
    let x = left;
    for (const s of series) {
      const cur = s.values.length ? s.values[s.values.length - 1] : 0;
      const label = s.name + ' ' + format(cur);
      g.fillStyle = s.color;
      g.fillRect(x, 9, 10, 10);
      g.fillStyle = '#1c2430';
      g.fillText(label, x + 15, 14);
      x += g.measureText(label).width + 34;
    }
  }

  function drawCharts() {
    if (view !== 'overview') return;
    drawChart($('chart-rates'), hist.t, [
      { name: 'publish', color: COLORS.publish, values: hist.publish },
      { name: 'deliver', color: COLORS.deliver, values: hist.deliver },
      { name: 'ack', color: COLORS.ack, values: hist.ack },
      { name: 'redeliver', color: COLORS.redeliver, values: hist.redeliver },
    ], fmtRate);
    drawChart($('chart-queued'), hist.t, [
      { name: 'ready', color: COLORS.ready, values: hist.ready, fill: true },
      { name: 'unacked', color: COLORS.unacked, values: hist.unacked, fill: true },
    ], fmtInt);
  }

  // ---- data ------------------------------------------------------------------------------

  const vhost = () => $('vhost').value;
  const scoped = (base) => (vhost() ? base + '/' + enc(vhost()) : base);

  function record(o) {
    const m = o.message_stats || {};
    const rate = (k) => (m[k + '_details'] && m[k + '_details'].rate) || 0;
    hist.t.push(Date.now());
    hist.publish.push(rate('publish'));
    hist.deliver.push(rate('deliver_get'));
    hist.ack.push(rate('ack'));
    hist.redeliver.push(rate('redeliver'));
    hist.ready.push(o.queue_totals.messages_ready);
    hist.unacked.push(o.queue_totals.messages_unacknowledged);
    for (const k of Object.keys(hist)) if (hist[k].length > HISTORY) hist[k].shift();
  }

  function showOverview(o) {
    const m = o.message_stats || {};
    const rate = (k) => (m[k + '_details'] && m[k + '_details'].rate) || 0;
    $('stat-publish-rate').textContent = fmtRate(rate('publish'));
    $('stat-deliver-rate').textContent = fmtRate(rate('deliver_get'));
    $('stat-ack-rate').textContent = fmtRate(rate('ack'));
    $('stat-ready').textContent = fmtInt(o.queue_totals.messages_ready);
    $('stat-unacked').textContent = fmtInt(o.queue_totals.messages_unacknowledged);
    $('stat-connections').textContent = fmtInt(o.object_totals.connections);
    $('stat-queues').textContent = fmtInt(o.object_totals.queues);
    $('stat-consumers').textContent = fmtInt(o.object_totals.consumers);
    $('version').textContent = o.product_name + ' ' + o.product_version;
    const alarms = [];
    if (o.alarms.memory) alarms.push(badge('memory alarm', 'alarm'));
    if (o.alarms.disk) alarms.push(badge('disk alarm', 'alarm'));
    if (!alarms.length) alarms.push(badge('no alarms', 'ok'));
    $('alarms').replaceChildren(...alarms);
    const kv = (table, pairs) => table.replaceChildren(...pairs.map(([k, v]) =>
      h('tr', {}, h('td', {}, k), h('td', {}, v))));
    kv($('totals'), [
      ['Published', fmtInt(m.publish)], ['Delivered and got', fmtInt(m.deliver_get)],
      ['Redelivered', fmtInt(m.redeliver)], ['Acknowledged', fmtInt(m.ack)],
      ['Unroutable', fmtInt(m.unroutable)], ['Exchanges', fmtInt(o.object_totals.exchanges)],
      ['Vhosts', fmtInt(o.object_totals.vhosts)],
    ]);
    const s = o.store || {};
    kv($('store'), [
      ['Records appended', fmtInt(s.records)], ['Bytes appended', fmtBytes(s.bytes)],
      ['CommitLog stored', fmtBytes((s.log_end || 0) - (s.log_start || 0))],
      ['Not yet on disk', fmtBytes((s.log_end || 0) - (s.durable || 0))],
      ['fsyncs', fmtInt(s.fsyncs)], ['Segments', fmtInt(s.segments)],
    ]);
    renderTable($('listeners'), [
      { title: 'Protocol', field: 'protocol', value: (l) => badge(l.protocol, 'p-' + l.protocol) },
      { title: 'Address', field: 'address', value: (l) => l.ip_address + ':' + l.port },
    ], o.listeners, (l) => l.protocol, null, 'No listeners.');
    drawCharts();
  }

  function connectionsTable(list) {
    renderTable($('connections'), [
      { title: 'Name', field: 'name', cls: 'name', value: (c) => c.name },
      { title: 'Protocol', field: 'protocol', value: (c) => badge(c.protocol, 'p-' + c.protocol) },
      { title: 'User', field: 'user', value: (c) => c.user },
      { title: 'Vhost', field: 'vhost', value: (c) => c.vhost },
      { title: 'Client id', field: 'client_id', value: (c) => c.client_id || '' },
      { title: 'Connected', field: 'age', value: (c) => fmtAge(c.connected_at) },
      { title: 'Sessions', field: 'sessions', num: true, value: (c) => fmtInt(c.sessions) },
      { title: 'Published', field: 'published', num: true, value: (c) => fmtInt(c.messages_published) },
      { title: 'Publish', field: 'publish_rate', num: true, value: (c) => fmtRate(c.publish_details.rate) },
      { title: 'Deliver', field: 'deliver_rate', num: true, value: (c) => fmtRate(c.deliver_details.rate) },
      { title: '', field: 'actions', cls: 'actions', once: true, value: (c) => h('button', {
        class: 'small danger', type: 'button', onclick: () => closeConnection(c),
      }, 'Close') },
    ], list.filter((c) => !vhost() || c.vhost === vhost()), (c) => c.name,
    (c) => ({ 'data-id': c.id }), 'No client is connected.');
  }

  async function closeConnection(c) {
    const ok = await confirmDialog('Close connection', `Close ${c.protocol} connection ${c.name} of user '${c.user}'? The client gets its protocol's close with the reason.`, 'Close connection', true);
    if (!ok) return;
    const headers = ok.reason ? { 'X-Reason': ok.reason } : {};
    try {
      await api('DELETE', '/api/connections/' + c.id, undefined, headers);
      toast(`Connection ${c.name} closed`);
      refresh();
    } catch (e) { toast(e.message, true); }
  }

  function queueFeatures(q) {
    const out = [];
    if (q.durable) out.push(badge('D'));
    if (q.auto_delete) out.push(badge('AD'));
    if (q.exclusive) out.push(badge('excl'));
    for (const k of Object.keys(q.arguments || {})) out.push(badge(k.replace(/^x-/, '')));
    if (q.policy) {
      const b = badge(q.policy, 'policy');
      b.title = 'policy ' + q.policy + ': ' + JSON.stringify(q.effective_policy_definition || {});
      out.push(b);
    }
    return h('span', { class: 'features' }, out);
  }

  function queuesTable(list) {
    const rate = (q, k) => {
      const m = q.message_stats || {};
      return (m[k + '_details'] && m[k + '_details'].rate) || 0;
    };
    const cols = [];
    if (!vhost()) cols.push({ title: 'Vhost', field: 'vhost', value: (q) => q.vhost });
    cols.push(
      { title: 'Name', field: 'name', cls: 'name', value: (q) => q.name },
      { title: 'Features', field: 'features', value: queueFeatures },
      { title: 'Partitions', field: 'partitions', num: true, value: (q) => fmtInt(q.partitions) },
      { title: 'Ready', field: 'ready', num: true, value: (q) => fmtInt(q.messages_ready) },
      { title: 'Unacked', field: 'unacked', num: true, value: (q) => fmtInt(q.messages_unacknowledged) },
      { title: 'Total', field: 'messages', num: true, value: (q) => fmtInt(q.messages) },
      { title: 'Consumers', field: 'consumers', num: true, value: (q) => fmtInt(q.consumers) },
      { title: 'Lag', field: 'lag', num: true, value: (q) => fmtInt(q.lag) },
      { title: 'In', field: 'publish_rate', num: true, value: (q) => fmtRate(rate(q, 'publish')) },
      { title: 'Out', field: 'deliver_rate', num: true, value: (q) => fmtRate(rate(q, 'deliver_get')) },
      { title: 'Ack', field: 'ack_rate', num: true, value: (q) => fmtRate(rate(q, 'ack')) },
      { title: '', field: 'actions', cls: 'actions', once: true, value: (q) => h('span', {},
        h('button', { class: 'small', type: 'button', onclick: () => goGet(q) }, 'Get'),
        h('button', { class: 'small danger', type: 'button', onclick: () => purgeQueue(q) }, 'Purge'),
        h('button', { class: 'small danger', type: 'button', onclick: () => deleteQueue(q) }, 'Delete')) },
    );
    if ($('queues').dataset.cols !== String(cols.length)) {
      resetTable('queues');
      $('queues').dataset.cols = String(cols.length);
    }
    renderTable($('queues'), cols, list, (q) => q.vhost + ' ' + q.name,
      (q) => ({ 'data-vhost': q.vhost, 'data-name': q.name }), 'No queues.');
  }

  const queuePath = (q) => '/api/queues/' + enc(q.vhost) + '/' + enc(q.name);

  async function purgeQueue(q) {
    if (!await confirmDialog('Purge queue', `Remove every ready message of '${q.name}' (vhost '${q.vhost}')?`, 'Purge')) return;
    try {
      const r = await api('DELETE', queuePath(q) + '/contents');
      toast(`Purged ${fmtInt(r.messages_purged)} message(s) from '${q.name}'`);
      refresh();
    } catch (e) { toast(e.message, true); }
  }

  async function deleteQueue(q) {
    if (!await confirmDialog('Delete queue', `Delete '${q.name}' (vhost '${q.vhost}') and every message in it?`, 'Delete')) return;
    try {
      await api('DELETE', queuePath(q));
      toast(`Queue '${q.name}' deleted`);
      refresh();
    } catch (e) { toast(e.message, true); }
  }

  function exchangesTable(list) {
    const cols = [];
    if (!vhost()) cols.push({ title: 'Vhost', field: 'vhost', value: (x) => x.vhost });
    cols.push(
      { title: 'Name', field: 'name', cls: 'name', value: (x) => x.name === '' ? '(AMQP default)' : x.name },
      { title: 'Type', field: 'type', value: (x) => badge(x.type) },
      { title: 'Features', field: 'features', value: (x) => h('span', {},
        x.durable ? badge('D') : null, x.auto_delete ? badge('AD') : null,
        x.internal ? badge('internal') : null) },
      { title: '', field: 'actions', cls: 'actions', once: true, value: (x) => h('span', {},
        x.internal ? null : h('button', { class: 'small', type: 'button', onclick: () => goPublish(x) }, 'Publish'),
        (x.name === '' || x.name.startsWith('amq.')) ? null
          : h('button', { class: 'small danger', type: 'button', onclick: () => deleteExchange(x) }, 'Delete')) },
    );
    if ($('exchanges').dataset.cols !== String(cols.length)) {
      resetTable('exchanges');
      $('exchanges').dataset.cols = String(cols.length);
    }
    renderTable($('exchanges'), cols, list, (x) => x.vhost + ' ' + (x.name || 'amq.default'),
      (x) => ({ 'data-vhost': x.vhost, 'data-name': x.name }), 'No exchanges.');
  }

  const exchangePath = (x) => '/api/exchanges/' + enc(x.vhost) + '/' + enc(x.name === '' ? 'amq.default' : x.name);

  async function deleteExchange(x) {
    if (!await confirmDialog('Delete exchange', `Delete exchange '${x.name}' (vhost '${x.vhost}') and its bindings?`, 'Delete')) return;
    try {
      await api('DELETE', exchangePath(x));
      toast(`Exchange '${x.name}' deleted`);
      refresh();
    } catch (e) { toast(e.message, true); }
  }

  function mqttTables(sessions, retained) {
    renderTable($('mqtt-sessions'), [
      { title: 'Client id', field: 'client_id', cls: 'name', value: (s) => s.client_id },
      { title: 'Vhost', field: 'vhost', value: (s) => s.vhost },
      { title: 'State', field: 'state', value: (s) => s.connected ? badge('connected', 'ok') : badge('offline') },
      { title: 'Session', field: 'kind', value: (s) => s.clean_session ? 'clean' : 'persistent' },
      { title: 'Expiry', field: 'expiry', value: (s) => s.expiry_interval === null ? 'never' : s.expiry_interval + ' s' },
      { title: 'Subscriptions', field: 'subscriptions', value: (s) => h('span', {},
        s.subscriptions.map((x) => badge(x.filter + ' q' + x.qos))) },
      { title: 'Queued', field: 'queued', num: true, value: (s) => fmtInt(s.messages) },
    ], sessions.filter((s) => !vhost() || s.vhost === vhost()), (s) => s.vhost + ' ' + s.client_id,
    null, 'No MQTT session.');
    renderTable($('mqtt-retained'), [
      { title: 'Topic', field: 'topic', cls: 'name', value: (r) => h('code', {}, r.topic) },
      { title: 'Vhost', field: 'vhost', value: (r) => r.vhost },
      { title: 'Stored', field: 'stored', value: (r) => fmtTime(r.store_ts) },
      { title: 'Size', field: 'size', num: true, value: (r) => fmtBytes(r.payload_bytes) },
      { title: 'Payload', field: 'payload', value: (r) => h('code', {},
        r.payload_encoding === 'string' ? r.payload.slice(0, 80) : '(base64) ' + r.payload.slice(0, 60)) },
      { title: '', field: 'actions', cls: 'actions', once: true, value: (r) => h('button', {
        class: 'small danger', type: 'button', onclick: () => deleteRetained(r) }, 'Delete') },
    ], retained.filter((r) => !vhost() || r.vhost === vhost()),
    (r) => r.vhost + ' ' + r.exchange + ' ' + r.topic, null, 'No retained message.');
  }

  async function deleteRetained(r) {
    if (!await confirmDialog('Delete retained message', `Delete the retained message of '${r.topic}'?`, 'Delete')) return;
    try {
      await api('DELETE', '/api/mqtt/retained/' + enc(r.vhost) + '?topic=' + enc(r.topic));
      toast(`Retained message of '${r.topic}' deleted`);
      refresh();
    } catch (e) { toast(e.message, true); }
  }

  // ---- publish and get -------------------------------------------------------------------

  function fillSelect(select, items, valueOf, labelOf) {
    const keep = select.value;
    const groups = new Map();
    for (const it of items) {
      if (!groups.has(it.vhost)) groups.set(it.vhost, []);
      groups.get(it.vhost).push(it);
    }
    const opts = [];
    for (const [v, list] of groups) {
      const og = h('optgroup', { label: 'vhost ' + v });
      for (const it of list) og.append(h('option', { value: valueOf(it) }, labelOf(it)));
      opts.push(og);
    }
    select.replaceChildren(...opts);
    if (keep && Array.from(select.options).some((o) => o.value === keep)) select.value = keep;
  }

  async function loadForms() {
    const [xs, qs] = await Promise.all([api('GET', scoped('/api/exchanges')), api('GET', scoped('/api/queues'))]);
    fillSelect($('pub-exchange'), xs.filter((x) => !x.internal),
      (x) => JSON.stringify([x.vhost, x.name]), (x) => x.name === '' ? '(AMQP default)' : x.name);
    fillSelect($('get-queue'), qs, (q) => JSON.stringify([q.vhost, q.name]), (q) => q.name);
  }

  function goPublish(x) {
    location.hash = '#messages';
    loadForms().then(() => { $('pub-exchange').value = JSON.stringify([x.vhost, x.name]); }).catch(() => {});
  }

  function goGet(q) {
    location.hash = '#messages';
    loadForms().then(() => { $('get-queue').value = JSON.stringify([q.vhost, q.name]); }).catch(() => {});
  }

  function parseHeaders(text) {
    const out = {};
    for (const line of text.split('\n')) {
      const t = line.trim();
      if (!t) continue;
      const i = t.indexOf('=');
      if (i <= 0) throw new Error(`header line '${t}' is not name=value`);
      out[t.slice(0, i).trim()] = t.slice(i + 1).trim();
    }
    return out;
  }

  async function publish(e) {
    e.preventDefault();
    const out = $('pub-result');
    try {
      if (!$('pub-exchange').value) throw new Error('no exchange to publish to');
      const [v, name] = JSON.parse($('pub-exchange').value);
      const properties = {};
      if ($('pub-content-type').value) properties.content_type = $('pub-content-type').value;
      if ($('pub-message-id').value) properties.message_id = $('pub-message-id').value;
      if ($('pub-persistent').checked) properties.delivery_mode = 2;
      const headers = parseHeaders($('pub-headers').value);
      if (Object.keys(headers).length) properties.headers = headers;
      const r = await api('POST', '/api/exchanges/' + enc(v) + '/' + enc(name || 'amq.default') + '/publish', {
        routing_key: $('pub-key').value, payload: $('pub-payload').value,
        payload_encoding: 'string', properties,
      });
      out.className = 'result' + (r.routed ? '' : ' bad');
      out.textContent = r.routed ? 'Message published and routed.' : 'Message published, but no queue was bound to receive it.';
    } catch (err) {
      out.className = 'result bad';
      out.textContent = err.message;
    }
    out.hidden = false;
  }

  function messageCard(m) {
    const props = Object.entries(m.properties || {}).map(([k, v]) =>
      badge(k + ': ' + (typeof v === 'object' ? JSON.stringify(v) : v)));
    return h('div', { class: 'msg' },
      h('div', { class: 'msg-head' },
        badge('exchange ' + (m.exchange || '(default)')), badge('key ' + m.routing_key),
        badge(m.payload_bytes + ' B'), m.redelivered ? badge('redelivered', 'alarm') : null,
        badge('partition ' + m.partition + ' @ ' + m.offset), props),
      h('pre', {}, m.payload));
  }

  async function getMessages(e) {
    e.preventDefault();
    const out = $('get-result');
    try {
      if (!$('get-queue').value) throw new Error('no queue to get from');
      const [v, name] = JSON.parse($('get-queue').value);
      const msgs = await api('POST', '/api/queues/' + enc(v) + '/' + enc(name) + '/get', {
        count: Number($('get-count').value) || 1, ackmode: $('get-ackmode').value,
        encoding: $('get-encoding').value, truncate: Number($('get-truncate').value) || 50000,
      });
      out.replaceChildren(msgs.length
        ? h('p', { class: 'result' }, `${msgs.length} message(s); ${fmtInt(msgs[msgs.length - 1].message_count)} left in the queue.`)
        : h('p', { class: 'result bad' }, 'The queue is empty.'), ...msgs.map(messageCard));
    } catch (err) {
      out.replaceChildren(h('p', { class: 'result bad' }, err.message));
    }
  }

  async function declare(e, kind) {
    e.preventDefault();
    const v = vhost() || '/';
    try {
      if (kind === 'queue') {
        const name = $('dq-name').value;
        await api('PUT', '/api/queues/' + enc(v) + '/' + enc(name), {
          durable: $('dq-durable').checked, partitions: Number($('dq-partitions').value) || 1,
        });
        toast(`Queue '${name}' declared in vhost '${v}'`);
        $('dq-name').value = '';
      } else {
        const name = $('dx-name').value;
        await api('PUT', '/api/exchanges/' + enc(v) + '/' + enc(name), {
          type: $('dx-type').value, durable: $('dx-durable').checked,
        });
        toast(`Exchange '${name}' declared in vhost '${v}'`);
        $('dx-name').value = '';
      }
      refresh();
    } catch (err) { toast(err.message, true); }
  }

  // ---- refresh loop ----------------------------------------------------------------------

  async function refreshView() {
    switch (view) {
      case 'connections': connectionsTable(await api('GET', '/api/connections')); break;
      case 'queues': queuesTable(await api('GET', scoped('/api/queues'))); break;
      case 'exchanges': exchangesTable(await api('GET', scoped('/api/exchanges'))); break;
      case 'mqtt': {
        const [s, r] = await Promise.all([api('GET', scoped('/api/mqtt/sessions')), api('GET', scoped('/api/mqtt/retained'))]);
        mqttTables(s, r);
        break;
      }
      default: break;
    }
  }

  async function refresh() {
    const gen = generation;
    try {
      const o = await api('GET', '/api/overview');
      if (gen !== generation) return;
      record(o);
      showOverview(o);
      await refreshView();
      $('live').className = 'live';
      $('live').textContent = 'live';
    } catch (e) {
      if (gen !== generation) return;
      $('live').className = 'live stale';
      $('live').textContent = e instanceof ApiError ? 'error' : 'offline';
      $('live').title = e.message;
    }
  }

  function loop() {
    clearTimeout(timer);
    const gen = generation;
    refresh().finally(() => {
      if (gen === generation && auth) timer = setTimeout(loop, REFRESH_MS);
    });
  }

  async function loadVhosts() {
    const vs = await api('GET', '/api/vhosts');
    const keep = vhost();
    $('vhost').replaceChildren(h('option', { value: '' }, 'all'),
      ...vs.map((v) => h('option', { value: v.name }, v.name)));
    if (vs.some((v) => v.name === keep)) $('vhost').value = keep;
  }

  function show(name) {
    if (!TITLES[name]) name = 'overview';
    view = name;
    for (const s of document.querySelectorAll('.view')) s.hidden = s.id !== 'view-' + name;
    for (const a of document.querySelectorAll('.sidebar a[data-view]')) {
      a.classList.toggle('active', a.dataset.view === name);
    }
    $('view-title').textContent = TITLES[name];
    if (name === 'messages') loadForms().catch((e) => toast(e.message, true));
    if (auth) refresh();
  }

  // ---- sign in and out -------------------------------------------------------------------

  async function start() {
    const me = await api('GET', '/api/whoami');
    $('whoami').textContent = me.name + (me.tags && me.tags.length ? ' (' + [].concat(me.tags).join(', ') + ')' : '');
    $('login').hidden = true;
    $('app').hidden = false;
    await loadVhosts().catch(() => {});
    show((location.hash || '#overview').slice(1));
    loop();
  }

  function signOut(message) {
    generation++;
    clearTimeout(timer);
    auth = null;
    sessionStorage.removeItem(AUTH_KEY);
    for (const k of Object.keys(hist)) hist[k].length = 0;
    $('app').hidden = true;
    $('login').hidden = false;
    $('login-error').hidden = !message;
    $('login-error').textContent = message || '';
    $('login-password').value = '';
    $('login-user').focus();
  }

  async function signIn(e) {
    e.preventDefault();
    auth = toBase64($('login-user').value + ':' + $('login-password').value);
    try {
      await api('GET', '/api/whoami');
      sessionStorage.setItem(AUTH_KEY, auth);
      generation++;
      await start();
    } catch (err) {
      auth = null;
      $('login-error').textContent = err.message.charAt(0).toUpperCase() + err.message.slice(1);
      $('login-error').hidden = false;
    }
  }

  function init() {
    $('login-form').addEventListener('submit', signIn);
    $('logout').addEventListener('click', () => signOut(''));
    $('publish-form').addEventListener('submit', publish);
    $('get-form').addEventListener('submit', getMessages);
    $('declare-queue').addEventListener('submit', (e) => declare(e, 'queue'));
    $('declare-exchange').addEventListener('submit', (e) => declare(e, 'exchange'));
    $('vhost').addEventListener('change', () => {
      for (const id of ['queues', 'exchanges', 'connections', 'mqtt-sessions', 'mqtt-retained']) resetTable(id);
      if (view === 'messages') loadForms().catch((err) => toast(err.message, true));
      refresh();
    });
    for (const [input, table] of [['filter-connections', 'connections'], ['filter-queues', 'queues'], ['filter-exchanges', 'exchanges']]) {
      $(input).addEventListener('input', () => { $(table).dataset.filter = $(input).value; refresh(); });
    }
    window.addEventListener('hashchange', () => show(location.hash.slice(1)));
    window.addEventListener('resize', drawCharts);
    if (auth) {
      start().catch(() => signOut(''));
    } else {
      signOut('');
    }
  }

  init();
})();
