/*
 * app.js: the monitoring page of `qn serve` (runs, live curves, devices,
 * surrogates, datasets). Plain JavaScript and the vendored uPlot; no build
 * step.
 *
 * Views are chosen by the address's hash (#/, #/jobs/7, #/compare?ids=1,2,
 * #/devices/3, #/surrogates/2, #/datasets/4, #/models/1) so every view can
 * be shared, and every reference a record makes (a dataset, device,
 * surrogate, model or job) is a link to its view.
 * Data comes from the REST API with the user's bearer token (kept in
 * localStorage). The runs table polls GET /v1/jobs (the daemon has no global
 * stream); a run's curves load their history once (decimated by the
 * server) and then follow the job's Server-Sent Events stream. The stream
 * is read with fetch() rather than EventSource because EventSource cannot
 * send an Authorization header; the page holds at most one stream open.
 *
 * Nothing from the server is ever inserted as HTML: every text goes
 * through textContent (el() below), so a job name cannot inject markup.
 */
'use strict';

(function () {
  const TOKEN_KEY = 'qn.token';
  const POLL_MS = 3000;
  const HISTORY_POINTS = 4000;
  const FINAL = new Set(['succeeded', 'failed', 'canceled']);
  const COLORS = ['#1f5fbf', '#d9480f', '#2b8a3e', '#862e9c', '#c2255c', '#0b7285', '#5f3dc4', '#e67700'];

  // ---- small helpers ----------------------------------------------------------

  /* Element with attributes and children (strings become text nodes). */
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const k of kids.flat()) {
      if (k === null || k === undefined || k === false) continue;
      e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return e;
  }
  const $ = (sel, root) => (root || document).querySelector(sel);

  function fmtNum(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return '–';
    if (typeof v !== 'number') return String(v);
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(digits || 3);
    return v.toPrecision(digits || 4);
  }
  function fmtTime(iso) {
    if (!iso) return '–';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }
  function fmtDuration(job) {
    if (!job.started) return '–';
    const end = job.finished ? new Date(job.finished) : new Date();
    let s = Math.max(0, (end - new Date(job.started)) / 1000);
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s';
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    s = Math.floor(s % 60);
    return h ? `${h} h ${m} min` : `${m} min ${s} s`;
  }
  /* A tick label: the shortest text of at most four significant digits
   * (0.3, 2.5e-4, 1e5), so a tick never reads as ".000e-4". */
  function fmtTick(v) {
    if (v === null || v === undefined || !Number.isFinite(v)) return '';
    if (v === 0) return '0';
    const a = Math.abs(v);
    if (a < 1e-3 || a >= 1e5) {
      const [m, e] = v.toExponential(2).split('e');
      return String(+m) + 'e' + String(+e);
    }
    return String(+v.toPrecision(4));
  }
  function pct(v) { return typeof v === 'number' ? (100 * v).toFixed(1) + ' %' : '–'; }

  /* ", 2.3 % out of domain" when a run's surrogate layers saw drives outside
   * the surrogates' domains (they answered for the nearest point inside). */
  function oodNote(r) {
    let f = r.out_of_domain;
    if (f && typeof f === 'object') f = Math.max(...Object.values(f).filter((v) => typeof v === 'number'), 0);
    return typeof f === 'number' && f > 0 ? `, ${pct(f)} out of domain` : '';
  }

  /* The figure that sums a job up, as text. */
  function headline(job) {
    const r = job.result;
    if (!r) return '';
    switch (job.type) {
      case 'train':
        return (typeof r.test_accuracy === 'number' ? 'test acc ' + pct(r.test_accuracy)
          : 'test loss ' + fmtNum(r.test_loss)) + oodNote(r);
      case 'fit': return 'val RMSE ' + fmtNum(r.val_rmse);
      case 'sweep': return `${r.rows} rows` + (r.failed ? `, ${r.failed} failed` : '');
      case 'evaluate':
        return (typeof r.accuracy === 'number' ? 'accuracy ' + pct(r.accuracy) : 'loss ' + fmtNum(r.loss)) +
          (r.solves ? `, ${r.solves} solves` : '') + oodNote(r);
      default: return '';
    }
  }

  /* The runs table's last cell: the headline, or why the run failed. */
  function headlineCell(job) {
    if (job.error && (job.state === 'failed' || job.state === 'canceled'))
      return el('td', { class: 'headline error', title: job.error, text: job.error });
    return el('td', { class: 'headline', text: headline(job) });
  }

  function stateBadge(state) { return el('span', { class: 'state ' + state, text: state }); }
  function progressBar(job) {
    const p = job.progress;
    if (!p || !p.total) return job.state === 'succeeded' ? '100 %' : '';
    const f = Math.min(1, p.done / p.total);
    const bar = el('span', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100,
      'aria-valuenow': Math.round(100 * f) }, el('span'));
    bar.firstChild.style.width = (100 * f).toFixed(1) + '%';
    return el('span', {}, bar, (100 * f).toFixed(0) + ' %');
  }

  // ---- references as links ----------------------------------------------------

  /* The datasets the daemon generates or ships (no page of their own). */
  const BUILTIN_DATASETS = new Set(['fashion-mnist', 'xor', 'sine', 'spirals', 'and', 'or', 'nand', 'nor', 'xnor',
    'lotka_volterra']);
  /* A spec or record key whose value refers to another record, and that record's view. */
  const REF_VIEW = { dataset: 'datasets', device: 'devices', surrogate: 'surrogates', model: 'models', job: 'jobs' };

  /* The address of record v (an id or a name) in view coll; null for a built-in dataset. */
  function refHref(coll, v) {
    if (typeof v === 'string' && coll === 'datasets' && BUILTIN_DATASETS.has(v)) return null;
    if (typeof v !== 'number' && typeof v !== 'string') return null;
    return `#/${coll}/${encodeURIComponent(v)}`;
  }
  /* A link to a record, or its text (built-in datasets, nothing to link). */
  function refLink(coll, v, text) {
    if (v === null || v === undefined) return '–';
    const href = refHref(coll, v);
    const t = text || (typeof v === 'number' ? '#' + v : String(v) + (coll === 'datasets' && !href ? ' (built-in)' : ''));
    return href ? el('a', { href, text: t }) : t;
  }
  /* A reference as a spec writes it (an id, a name, {"job": N}, {"id": N}, {"name": ...}, inline) as links. */
  function specRef(coll, v) {
    if (v === null || v === undefined) return '–';
    if (typeof v !== 'object') return refLink(coll, v);
    if (v.job !== undefined) return el('span', {}, 'made by job ', refLink('jobs', v.job));
    if (v.id !== undefined) return refLink(coll, v.id);
    if (v.name !== undefined) return refLink(coll, v.name);
    return 'inline ' + (v.kind || coll.replace(/s$/, ''));
  }

  /* Which view the values under key k refer to, inside an object referring to coll. */
  function childRef(coll, k) {
    if (coll === 'surrogates-map') return 'surrogates';
    if (k === 'surrogates') return 'surrogates-map';
    if (k === 'job') return 'jobs';
    if (REF_VIEW[k]) return REF_VIEW[k];
    if ((k === 'id' || k === 'name') && coll && coll !== 'jobs') return coll;
    return null;
  }

  /*
   * A JSON value pretty-printed as JSON.stringify(v, null, 2) does, with
   * every reference (a dataset, device, surrogate, model or job, by id,
   * name, {"job": N} or {"id": N}) a link to its view.
   */
  function jsonView(v, id) {
    const out = [];
    let buf = '';
    const text = (t) => { buf += t; };
    const link = (node) => { if (buf) out.push(buf); buf = ''; out.push(node); };
    const put = (x, ind, coll) => {
      if (x !== null && typeof x === 'object') {
        const arr = Array.isArray(x);
        const keys = arr ? x.map((_, i) => i) : Object.keys(x);
        if (!keys.length) { text(arr ? '[]' : '{}'); return; }
        text(arr ? '[\n' : '{\n');
        keys.forEach((k, i) => {
          text(' '.repeat(ind + 2) + (arr ? '' : JSON.stringify(k) + ': '));
          put(x[k], ind + 2, arr ? null : childRef(coll, k));
          text(i < keys.length - 1 ? ',\n' : '\n');
        });
        text(' '.repeat(ind) + (arr ? ']' : '}'));
        return;
      }
      const t = JSON.stringify(x);
      const href = coll && coll !== 'surrogates-map' ? refHref(coll, x) : null;
      if (href) link(el('a', { href, text: t, 'data-ref': coll })); else text(t);
    };
    put(v, 0, null);
    if (buf) out.push(buf);
    return el('pre', { id }, out);
  }

  /* A facts list from [label, value] pairs; a value may be a node (a link). */
  function factList(pairs) {
    return el('dl', { class: 'facts' }, pairs.flatMap(([k, v]) => [el('dt', { text: k }),
      el('dd', {}, v instanceof Node ? v : (v === null || v === undefined ? '–' : String(v)))]));
  }

  // ---- the API --------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body) {
      const e = body && body.error;
      super(e ? e.message + (e.path ? ` (at ${e.path})` : '') : `HTTP ${status}`);
      this.status = status;
      this.code = e ? e.code : null;
    }
  }

  const auth = { token: localStorage.getItem(TOKEN_KEY) || '', needed: false, who: null };

  function headers(extra) {
    const h = Object.assign({ Accept: 'application/json' }, extra || {});
    if (auth.token) h.Authorization = 'Bearer ' + auth.token;
    return h;
  }

  /* JSON from the API; throws ApiError (a 401 also shows the sign-in form). */
  async function api(path, opts) {
    opts = opts || {};
    const init = { method: opts.method || 'GET', headers: headers(opts.body ? { 'Content-Type': 'application/json' } : null),
      signal: opts.signal };
    if (opts.body) init.body = JSON.stringify(opts.body);
    const res = await fetch(path, init);
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = opts.raw ? null : { error: { message: text } }; }
    if (res.status === 401) {
      signinNeeded(auth.token ? 'The daemon refused this token (401): ' + (body && body.error ? body.error.message : '') : '');
      throw new ApiError(401, body);
    }
    if (!res.ok) throw new ApiError(res.status, body);
    return opts.raw ? text : body;
  }

  /* Every page of a list route ({"<key>": [...], "next": cursor}). */
  async function apiList(path, key, maxPages) {
    let out = [], cursor = null;
    for (let i = 0; i < (maxPages || 20); i++) {
      const sep = path.includes('?') ? '&' : '?';
      const page = await api(path + sep + 'limit=1000' + (cursor ? '&cursor=' + cursor : ''));
      out = out.concat(page[key] || []);
      if (page.next === null || page.next === undefined) break;
      cursor = page.next;
    }
    return out;
  }

  // ---- Server-Sent Events over fetch -------------------------------------

  /*
   * Follows an SSE stream at path: onEvent(type, data, id) per event.
   * Reconnects with Last-Event-ID after a drop, unless done() says the
   * stream has nothing more (the job ended) or stop() was called.
   */
  function sseFollow(path, lastId, onEvent, done) {
    const ctl = { stopped: false, abort: null, lastId: lastId || 0, retry: 2000 };
    async function once() {
      const ac = new AbortController();
      ctl.abort = ac;
      const h = headers({ Accept: 'text/event-stream' });
      if (ctl.lastId) h['Last-Event-ID'] = String(ctl.lastId);
      const res = await fetch(path, { headers: h, signal: ac.signal, cache: 'no-store' });
      if (res.status === 401) { signinNeeded('The daemon refused this token (401).'); ctl.stopped = true; return; }
      if (!res.ok || !res.body) throw new Error('event stream: HTTP ' + res.status);
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done: eof } = await reader.read();
        if (eof) break;
        buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
        let k;
        while ((k = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, k);
          buf = buf.slice(k + 2);
          dispatch(block);
        }
      }
    }
    function dispatch(block) {
      let type = 'message', data = [], id = null;
      for (const line of block.split('\n')) {
        if (!line || line[0] === ':') continue;
        const c = line.indexOf(':');
        const f = c < 0 ? line : line.slice(0, c);
        let v = c < 0 ? '' : line.slice(c + 1);
        if (v[0] === ' ') v = v.slice(1);
        if (f === 'event') type = v;
        else if (f === 'data') data.push(v);
        else if (f === 'id') id = v;
        else if (f === 'retry' && /^\d+$/.test(v)) ctl.retry = Math.max(500, +v);
      }
      if (id !== null && /^\d+$/.test(id)) ctl.lastId = +id;
      if (!data.length) return;
      let parsed;
      try { parsed = JSON.parse(data.join('\n')); } catch (e) { return; }
      onEvent(type, parsed, id);
    }
    (async function loop() {
      while (!ctl.stopped) {
        try { await once(); } catch (e) { if (ctl.stopped) return; }
        if (ctl.stopped || done()) return;
        await new Promise((r) => setTimeout(r, ctl.retry));
      }
    })();
    ctl.stop = () => { ctl.stopped = true; if (ctl.abort) ctl.abort.abort(); };
    return ctl;
  }

  // ---- downloads ----------------------------------------------------------------

  /* Saves text or a blob as a file named name (an <a download> click). */
  function download(name, blob) {
    const url = URL.createObjectURL(blob);
    const a = el('a', { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }
  /* A CSV field: numbers as JavaScript prints them (the shortest text that reads back the same), text quoted when needed. */
  function csvField(v) {
    if (v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v))) return '';
    const t = String(v);
    return /[",\n]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
  }
  const csvText = (head, rows) => [head, ...rows].map((r) => r.map(csvField).join(',')).join('\n') + '\n';
  /* A file name from a title: letters, digits and dashes. */
  const fileName = (title, ext) => (title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'data') + '.' + ext;

  /* A table's text as CSV (header cells, then each row's cells; a cell's title, when set, is its full text). */
  function tableCsv(table) {
    const cells = (tr) => Array.from(tr.children).map((c) => c.getAttribute('title') || c.textContent.trim());
    const head = table.tHead ? cells(table.tHead.rows[0]) : [];
    const rows = Array.from(table.tBodies[0] ? table.tBodies[0].rows : []).filter((tr) => tr.children.length === head.length).map(cells);
    return csvText(head, rows);
  }
  /* A "CSV" button that downloads table as name.csv. */
  function tableCsvButton(table, title) {
    return el('button', { type: 'button', class: 'small', 'data-download': 'csv', 'aria-label': `Download ${title} as CSV`,
      onclick: () => download(fileName(title, 'csv'), new Blob([tableCsv(table)], { type: 'text/csv' })) }, 'CSV');
  }

  // ---- charts --------------------------------------------------------------

  /* A legend value: at the cursor, or the series' last value when the cursor is off the chart
   * (so the legend never reads "–" until hovered). */
  function legendValue(u, v, si, idx) {
    if (idx !== null && idx !== undefined) return fmtNum(v);
    const col = u.data[si] || [];
    for (let i = col.length - 1; i >= 0; i--) if (col[i] !== null && col[i] !== undefined && Number.isFinite(col[i])) return fmtNum(col[i]);
    return '–';
  }

  /* A colour '#rrggbb' at a quarter of its opacity. */
  function fade(c) {
    const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(c);
    return m ? `rgba(${parseInt(m[1], 16)},${parseInt(m[2], 16)},${parseInt(m[3], 16)},0.28)` : c;
  }

  /* Exponential moving average with TensorBoard's debiasing; w in [0, 1). */
  function smooth(ys, w) {
    if (!w) return ys;
    const out = new Array(ys.length);
    let last = 0, n = 0;
    for (let i = 0; i < ys.length; i++) {
      const y = ys[i];
      if (y === null || !Number.isFinite(y)) { out[i] = y; continue; }
      last = last * w + (1 - w) * y;
      n++;
      out[i] = last / (1 - Math.pow(w, n));
    }
    return out;
  }

  /* Aligns series [{label, xs, ys}] on the union of their x values (null gaps). */
  function align(series) {
    const set = new Set();
    for (const s of series) for (const x of s.xs) set.add(x);
    const xs = Array.from(set).sort((a, b) => a - b);
    const at = new Map(xs.map((x, i) => [x, i]));
    const cols = series.map((s) => {
      const c = new Array(xs.length).fill(null);
      for (let i = 0; i < s.xs.length; i++) c[at.get(s.xs[i])] = s.ys[i];
      return c;
    });
    return [xs, ...cols];
  }

  /* A uPlot plugin drawing vertical marker lines: markers() -> [{x, color, dash}]. */
  function markerPlugin(markers) {
    return {
      hooks: {
        draw: [(u) => {
          const list = markers();
          if (!list.length) return;
          const ctx = u.ctx, top = u.bbox.top, h = u.bbox.height;
          ctx.save();
          ctx.lineWidth = 1;
          for (const m of list) {
            const x = Math.round(u.valToPos(m.x, 'x', true));
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
            ctx.strokeStyle = m.color;
            ctx.setLineDash(m.dash || []);
            ctx.beginPath();
            ctx.moveTo(x + 0.5, top);
            ctx.lineTo(x + 0.5, top + h);
            ctx.stroke();
          }
          ctx.restore();
        }],
      },
    };
  }

  /* The width in CSS pixels an axis needs for its tick labels (12 px digits). */
  function axisSize(values, label) {
    const n = Math.max(1, ...(values || []).map((v) => String(v).length));
    return Math.ceil(n * 7.4) + 14 + (label ? 4 : 0);
  }

  /*
   * A chart in a card: host element, title, x label, series names; update()
   * takes [{label, xs, ys, scale?}] and redraws. opts: y (the y axis label,
   * with its unit), y2 (the right axis label, for series with scale 'y2'),
   * log (y log scale allowed), points (scatter), markers (function),
   * smooth (function -> weight). The host carries what the chart shows, for
   * the browser test and for scripts: data-points, data-x-label,
   * data-y-label, data-y-ticks (the tick texts drawn), data-log.
   */
  class Chart {
    constructor(parent, key, title, xLabel, opts) {
      this.opts = opts || {};
      this.key = key;
      this.xLabel = xLabel;
      this.title = title;
      const csv = el('button', { type: 'button', class: 'small', 'data-download': 'csv', 'aria-label': `Download ${title} as CSV`,
        onclick: () => download(fileName(title, 'csv'), new Blob([this.csv()], { type: 'text/csv' })) }, 'CSV');
      const png = el('button', { type: 'button', class: 'small', 'data-download': 'png', 'aria-label': `Download ${title} as PNG`,
        onclick: () => this.png() }, 'PNG');
      this.card = el('section', { class: 'card', 'aria-label': title },
        el('div', { class: 'card-head' }, el('h2', { text: title }), el('span', { class: 'tools' }, csv, png)));
      this.host = el('div', { class: 'chart', 'data-chart': key, 'data-points': 0 });
      this.note = el('div', { class: 'legend-note' });
      this.card.append(this.host, this.note);
      parent.append(this.card);
      this.series = [];
      this.u = null;
      this.sig = '';
      this.log = !!this.opts.startLog;
      // The card's width follows the layout (grid columns, the window): follow it.
      this.lastW = 0;
      this.ro = new ResizeObserver(() => { if (this.width() !== this.lastW) this.resize(); });
      this.ro.observe(this.card);
    }
    width() { return Math.max(240, Math.floor((this.card.clientWidth || 524) - 26)); }
    build(data) {
      if (this.u) this.u.destroy();
      const o = this.opts;
      const series = [{ label: this.xLabel, value: legendValue }].concat((this.drawn || this.series).map((s, i) => ({
        label: s.label,
        scale: s.scale || 'y',
        stroke: s.color || COLORS[i % COLORS.length],
        width: o.points ? 0 : (s.width || 1.5),
        spanGaps: true,
        paths: o.points ? () => null : undefined,
        points: o.points ? { show: true, size: 4, width: 0, fill: s.color || COLORS[i % COLORS.length] } : { show: false },
        value: legendValue,
      })));
      const logY = this.log && o.log;
      const host = this.host;
      const yTicks = (u, vals) => {
        const out = vals.map(fmtTick);
        host.setAttribute('data-y-ticks', out.join('|'));
        return out;
      };
      const axes = [
        { label: this.xLabel, size: 40, values: (u, vals) => vals.map(fmtTick) },
        { label: o.y || '', values: yTicks, size: (u, vals) => axisSize(vals, o.y) },
      ];
      const scales = { x: { time: false }, y: logY ? { distr: 3 } : {} };
      if ((this.drawn || this.series).some((s) => s.scale === 'y2')) {
        scales.y2 = o.y2Range ? { range: o.y2Range } : {};
        axes.push({ scale: 'y2', side: 1, label: o.y2 || '', grid: { show: false },
          values: (u, vals) => vals.map(fmtTick), size: (u, vals) => axisSize(vals, o.y2) });
      }
      this.lastW = this.width();
      this.u = new uPlot({
        width: this.lastW,
        height: o.height || 260,
        series,
        scales,
        axes,
        legend: { live: true },
        cursor: { drag: { x: true, y: false } },
        plugins: o.markers ? [markerPlugin(o.markers)] : [],
      }, data, this.host);
      host.setAttribute('data-x-label', this.u.axes[0].label || '');
      host.setAttribute('data-y-label', this.u.axes[1].label || '');
      if (axes.length > 2) host.setAttribute('data-y2-label', this.u.axes[2].label || '');
      host.setAttribute('data-log', logY ? '1' : '0');
    }
    /* series: [{label, xs, ys, color?, scale?}] */
    update(series) {
      this.series = series;
      const w = this.opts.smooth ? this.opts.smooth() : 0;
      /* Smoothed, the raw curve stays drawn, faint, behind the smoothed one (as TensorBoard does). */
      const raw = w > 0 && !this.opts.points;
      this.drawn = raw ? series.flatMap((s, i) => [
        Object.assign({}, s, { label: s.label + ' (raw)', color: fade(s.color || COLORS[i % COLORS.length]), width: 1, raw: true }),
        Object.assign({}, s, { color: s.color || COLORS[i % COLORS.length], ys: smooth(s.ys, w) })]) : series;
      let data = align(this.drawn.map((s) => ({ xs: s.xs, ys: s.ys })));
      if (this.log && this.opts.log) data = [data[0], ...data.slice(1).map((c) => c.map((v) => (v > 0 ? v : null)))];
      const sig = this.drawn.map((s) => s.label).join('|') + (this.log ? ':log' : '');
      if (!this.u || sig !== this.sig) { this.sig = sig; this.build(data); } else this.u.setData(data);
      if (this.u.cursor.idx === null || this.u.cursor.idx === undefined) this.u.setLegend({ idx: null });
      let n = 0;
      for (const s of series) n += s.xs.length;
      this.host.setAttribute('data-points', String(n));
      this.host.setAttribute('data-raw', raw ? '1' : '0');
      this.host.setAttribute('data-series', String(this.drawn.length));
    }
    /* The chart's data as CSV: x, then each series' raw values (not smoothed), aligned on x. */
    csv() {
      const d = align(this.series);
      const head = [this.xLabel, ...this.series.map((s) => s.label)];
      return csvText(head, d[0].map((x, i) => [x, ...d.slice(1).map((c) => c[i])]));
    }
    /* The chart as a PNG: its canvas on white, with the title above. */
    png() {
      if (!this.u) return;
      const src = this.u.ctx.canvas, pad = 28 * devicePixelRatio;
      const c = document.createElement('canvas');
      c.width = src.width; c.height = src.height + pad;
      const g = c.getContext('2d');
      g.fillStyle = '#fff'; g.fillRect(0, 0, c.width, c.height);
      g.fillStyle = '#1c2330'; g.font = `${14 * devicePixelRatio}px sans-serif`;
      g.fillText(this.title, 8 * devicePixelRatio, 19 * devicePixelRatio);
      g.drawImage(src, 0, pad);
      c.toBlob((b) => { if (b) download(fileName(this.title, 'png'), b); }, 'image/png');
    }
    setLog(on) { this.log = on; this.sig = ''; if (this.series.length) this.update(this.series); }
    resize() { this.lastW = this.width(); if (this.u) this.u.setSize({ width: this.lastW, height: this.u.height }); }
    destroy() { this.ro.disconnect(); if (this.u) this.u.destroy(); this.u = null; }
  }

  // ---- the shell: sign-in, banner, routing ---------------------------------

  const view = () => $('#view');
  let current = null; // the view's teardown: {stop()}

  function banner(msg) {
    const b = $('#banner');
    b.textContent = msg || '';
    b.hidden = !msg;
  }

  function renderWho() {
    const w = $('#who');
    w.replaceChildren();
    if (auth.needed && auth.token) {
      w.append(el('span', { text: auth.who ? `signed in as ${auth.who.name}${auth.who.admin ? ' (admin)' : ''}` : 'signed in with a token' }),
        el('button', { type: 'button', onclick: () => { auth.token = ''; localStorage.removeItem(TOKEN_KEY); signinNeeded(''); } }, 'Sign out'));
    } else if (!auth.needed) {
      w.append(el('span', { text: 'local daemon (no users)' }));
    }
  }

  let signinShown = false;
  function signinNeeded(msg) {
    auth.needed = true;
    teardown();
    signinShown = true;
    renderWho();
    const input = el('input', { type: 'password', id: 'token', autocomplete: 'current-password', required: true });
    const form = el('form', { class: 'signin', 'aria-label': 'Sign in' },
      el('h1', { text: 'Sign in' }),
      el('p', { class: 'muted', text: 'This daemon has users. Paste the token `qn user add NAME` printed for you; it is kept in this browser only.' }),
      msg ? el('p', { class: 'error', role: 'alert', text: msg }) : null,
      el('label', { for: 'token', text: 'Token' }), input,
      el('button', { class: 'primary', type: 'submit' }, 'Sign in'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      auth.token = input.value.trim();
      localStorage.setItem(TOKEN_KEY, auth.token);
      signinShown = false;
      start(); // who the token belongs to, then the page
    });
    view().replaceChildren(form);
    input.focus();
  }

  function teardown() {
    if (current && current.stop) current.stop();
    current = null;
  }

  const routes = [
    [/^\/?$/, viewRuns, 'runs'],
    [/^\/jobs\/(\d+)$/, viewJob, 'runs'],
    [/^\/compare$/, viewCompare, 'compare'],
    [/^\/devices$/, viewDevices, 'devices'],
    [/^\/devices\/([^/]+)$/, viewDevice, 'devices'],
    [/^\/surrogates$/, viewSurrogates, 'surrogates'],
    [/^\/surrogates\/(\d+)$/, viewSurrogate, 'surrogates'],
    [/^\/datasets$/, viewDatasets, 'datasets'],
    [/^\/datasets\/([^/]+)$/, viewDataset, 'datasets'],
    [/^\/models$/, viewModels, 'models'],
    [/^\/models\/([^/]+)$/, viewModel, 'models'],
    [/^\/study$/, viewStudy, 'study'],
  ];

  function parseHash() {
    const h = decodeURIComponent(location.hash.replace(/^#/, '')) || '/';
    const q = h.indexOf('?');
    return { path: q < 0 ? h : h.slice(0, q), query: new URLSearchParams(q < 0 ? '' : h.slice(q + 1)) };
  }

  function route() {
    teardown();
    banner('');
    const { path, query } = parseHash();
    for (const [re, fn, nav] of routes) {
      const m = path.match(re);
      if (!m) continue;
      for (const a of document.querySelectorAll('[data-nav]'))
        if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
      const root = el('div');
      view().replaceChildren(root);
      current = { stop: null };
      const mine = current;
      Promise.resolve(fn(root, m.slice(1), query, mine)).catch((e) => {
        if (e && e.status === 401) return;
        if (e && e.name === 'AbortError') return;
        if (mine === current) root.append(el('p', { class: 'error', role: 'alert', text: 'Could not load this view: ' + (e && e.message ? e.message : e) }));
      });
      return;
    }
    view().replaceChildren(el('h1', { text: 'Not found' }), el('p', {}, 'No view at ', el('code', { text: path }), '. ', el('a', { href: '#/' }, 'Back to the runs')));
  }

  function stopper(obj) { if (current) current.stop = obj; }

  // ---- the runs table ----------------------------------------------------------

  const runsState = { filter: { state: '', type: '', owner: '' }, selected: new Set() };

  /* The runs table's column classes: on a phone (narrow) only name, state, progress and
   * headline stay ('wide' columns go below 900 px, 'phone' ones below 600 px; the name links the id). */
  const RUN_COL_CLASS = ['phone', 'num phone', 'name', 'phone', 'phone', null, null, 'wide', 'num phone', 'headline'];

  async function viewRuns(root, _m, _q, me) {
    root.append(el('h1', { text: 'Runs' }));
    const mk = (id, label, opts) => {
      const s = el('select', { id, 'data-filter': id.replace('f-', '') }, el('option', { value: '', text: 'any' }),
        opts.map((o) => el('option', { value: o, text: o })));
      return [el('label', { for: id, text: label + ' ' }), s];
    };
    const [lState, sState] = mk('f-state', 'State', ['waiting', 'queued', 'running', 'succeeded', 'failed', 'canceled']);
    const [lType, sType] = mk('f-type', 'Type', ['sweep', 'fit', 'train', 'evaluate']);
    const [lOwner, sOwner] = mk('f-owner', 'Owner', []);
    const cmp = el('button', { type: 'button', class: 'primary', id: 'compare-btn', disabled: true }, 'Compare selected');
    const status = el('span', { class: 'muted', 'aria-live': 'polite' });
    root.append(el('div', { class: 'row' }, el('span', {}, lState, sState), el('span', {}, lType, sType),
      el('span', {}, lOwner, sOwner), cmp, status));
    const tbody = el('tbody');
    const table = el('table', { id: 'runs' },
      el('caption', { class: 'skip', text: 'Jobs, newest first' }),
      el('thead', {}, el('tr', {}, ['', 'id', 'name', 'type', 'owner', 'state', 'progress', 'started', 'duration', 'headline']
        .map((t, i) => el('th', { scope: 'col', class: RUN_COL_CLASS[i], text: t })))),
      tbody);
    root.append(el('div', { class: 'table-wrap' }, table), el('p', { class: 'row' }, tableCsvButton(table, 'runs')));
    sState.value = runsState.filter.state;
    sType.value = runsState.filter.type;
    let jobs = [];
    const updateCmp = () => {
      cmp.disabled = runsState.selected.size < 1;
      cmp.textContent = runsState.selected.size ? `Compare selected (${runsState.selected.size})` : 'Compare selected';
    };
    cmp.addEventListener('click', () => { location.hash = '#/compare?ids=' + Array.from(runsState.selected).join(','); });
    const render = () => {
      const f = runsState.filter;
      const owners = Array.from(new Set(jobs.map((j) => j.owner))).sort();
      if (owners.join('\n') !== Array.from(sOwner.options).slice(1).map((o) => o.value).join('\n')) {
        sOwner.replaceChildren(el('option', { value: '', text: 'any' }), owners.map((o) => el('option', { value: o, text: o })));
      }
      sOwner.value = f.owner;
      const rows = jobs.filter((j) => (!f.state || j.state === f.state) && (!f.type || j.type === f.type) &&
        (!f.owner || j.owner === f.owner)).sort((a, b) => b.id - a.id);
      tbody.replaceChildren(...rows.map((j) => {
        const box = el('input', { type: 'checkbox', 'aria-label': `select job ${j.id} for comparison` });
        box.checked = runsState.selected.has(j.id);
        box.addEventListener('change', () => {
          if (box.checked) runsState.selected.add(j.id); else runsState.selected.delete(j.id);
          updateCmp();
        });
        return el('tr', { 'data-job': j.id, 'data-state': j.state },
          el('td', { class: 'phone' }, box), el('td', { class: 'num phone', text: j.id }),
          el('td', { class: 'name' }, el('a', { href: '#/jobs/' + j.id, text: j.name || '(unnamed)' })),
          el('td', { class: 'phone', text: j.type }), el('td', { class: 'phone', text: j.owner }), el('td', { class: 'state-cell' }, stateBadge(j.state)),
          el('td', { class: 'progress-cell' }, progressBar(j)), el('td', { class: 'wide', text: fmtTime(j.started) }),
          el('td', { class: 'num phone', text: fmtDuration(j) }), headlineCell(j));
      }));
      if (!rows.length) tbody.append(el('tr', {}, el('td', { colspan: 10, class: 'muted', text: jobs.length ? 'No job matches these filters.' : 'No jobs yet. Submit one with POST /v1/jobs or qn run.' })));
      updateCmp();
    };
    for (const s of [sState, sType, sOwner]) {
      s.addEventListener('change', () => { runsState.filter[s.dataset.filter] = s.value; render(); });
    }
    let timer = null, stopped = false;
    const poll = async () => {
      try {
        jobs = await apiList('/v1/jobs', 'jobs');
        if (stopped) return;
        status.textContent = 'updated ' + new Date().toLocaleTimeString();
        render();
      } catch (e) {
        if (e.status === 401) return;
        status.textContent = 'cannot reach the daemon: ' + e.message;
      }
      if (!stopped) timer = setTimeout(poll, POLL_MS);
    };
    stopper(() => { stopped = true; clearTimeout(timer); });
    await poll();
  }

  // ---- one run -----------------------------------------------------------------

  /* The loss a train spec minimises, as an axis label with its unit. */
  function lossAxis(spec) {
    return spec && spec.loss === 'mse' ? 'MSE loss (target units²)'
      : 'cross-entropy loss (nats)';
  }

  /*
   * Which charts a job type shows: key, title, x label, y label (a function
   * of the spec), metric names, log allowed, log from the start (fit curves
   * fall over decades and collapse onto zero on a linear scale).
   */
  const CHARTS = {
    train: [
      { key: 'loss', title: 'Loss per epoch', x: 'epoch', y: lossAxis, names: ['train_loss', 'test_loss'], log: true },
      { key: 'accuracy', title: 'Accuracy per epoch', x: 'epoch', y: () => 'accuracy (fraction, 0–1)',
        names: ['train_accuracy', 'test_accuracy'] },
      { key: 'step_loss', title: 'Step loss', x: 'step', y: lossAxis, names: ['step_loss'], log: true },
      { key: 'out_of_domain', title: 'Surrogate drives outside the domain (fraction per epoch)', x: 'epoch',
        y: () => 'fraction of drives (0–1)', names: ['out_of_domain'], only: true },
    ],
    fit: [
      { key: 'val_rmse', title: 'Validation RMSE per epoch', x: 'epoch', y: () => 'RMSE (device output units)',
        names: ['val_rmse'], log: true, startLog: true },
      { key: 'loss', title: 'Training loss per epoch', x: 'epoch', y: () => 'MSE (standardised, unitless)',
        names: ['train_loss'], log: true, startLog: true },
    ],
    sweep: [],
    evaluate: [],
  };
  const X_LABEL = { epoch: 'epoch', step: 'optimizer step' };
  const KNOWN = new Set(['step_loss', 'train_loss', 'train_accuracy', 'test_loss', 'test_accuracy', 'val_rmse',
    'solves', 'seconds', 'failed_solves', 'loss', 'accuracy', 'out_of_domain']);
  /* Metrics that are figures, not structure events (out_of_domain_<layer> too). */
  const isFigure = (name) => KNOWN.has(name) || name.startsWith('out_of_domain_');

  async function viewJob(root, [id]) {
    let job = await api('/v1/jobs/' + id);
    const metrics = new Map(); // name -> {steps: [], epochs: [], ys: []}
    const events = [];         // structure events: {epoch, step, name, value}
    let lastId = 0;
    const add = (m) => {
      if (m.id <= lastId) return;
      lastId = m.id;
      if (!isFigure(m.name)) { events.push(m); return; }
      let s = metrics.get(m.name);
      if (!s) metrics.set(m.name, (s = { steps: [], epochs: [], ys: [] }));
      s.steps.push(m.step); s.epochs.push(m.epoch);
      s.ys.push(m.value === null ? null : m.value);
    };

    const title = el('h1', {});
    const facts = el('dl', { class: 'facts' });
    const cancel = el('button', { type: 'button', class: 'danger', id: 'cancel' }, 'Cancel this run');
    const cancelMsg = el('span', { role: 'status' });
    const log = el('input', { type: 'checkbox', id: 'logscale', checked: job.type === 'fit' });
    const sm = el('input', { type: 'range', id: 'smoothing', min: 0, max: 0.99, step: 0.01, value: 0 });
    const smVal = el('output', { for: 'smoothing', text: '0' });
    const optionsRow = el('div', { class: 'row', role: 'group', 'aria-label': 'Chart options' },
      el('label', {}, log, ' log scale (losses)'),
      el('label', { for: 'smoothing' }, 'smoothing '), sm, smVal,
      el('span', { class: 'legend-note', text: 'markers: grey = epoch, blue dashed = checkpoint, red = structure change' }));
    const errBox = el('p', { class: 'error run-error', role: 'alert', hidden: true });
    const charts = el('div', { class: 'grid' });
    const chartsNote = el('p', { class: 'muted', id: 'charts-note', hidden: true });
    const extra = el('div', { class: 'grid spaced' });
    const specCard = el('section', { class: 'card' }, el('h2', { text: 'Spec' }), el('pre', { id: 'spec' }));
    const resultCard = el('section', { class: 'card' }, el('h2', { text: 'Result' }), el('pre', { id: 'result' }));
    root.append(el('p', {}, el('a', { href: '#/', text: '← Runs' })), title,
      el('div', { class: 'row' }, facts), errBox, el('div', { class: 'row' }, cancel, cancelMsg),
      optionsRow,
      chartsNote, charts, extra,
      el('div', { class: 'grid spaced' },
        specCard, resultCard));

    const ckEvery = () => (job.spec && job.spec.checkpoint_every) || 0;
    const epochMarkers = (useStep) => {
      const out = [];
      const tl = metrics.get('train_loss') || metrics.get('val_rmse');
      if (tl) {
        const n = tl.epochs.length, every = Math.max(1, Math.ceil(n / 60));
        const ck = ckEvery();
        for (let i = 0; i < n; i++) {
          const e = tl.epochs[i], x = useStep ? tl.steps[i] : e;
          if (ck && e % ck === 0) out.push({ x, color: 'rgba(31,95,191,0.55)', dash: [4, 3] });
          else if (useStep && i % every === 0) out.push({ x, color: 'rgba(120,120,120,0.25)' });
        }
      }
      for (const ev of events) out.push({ x: useStep ? ev.step : ev.epoch, color: 'rgba(179,38,30,0.8)' });
      return out;
    };
    /* A chart marked `only` is drawn only for runs that have its metric
     * (a network without surrogate layers has no out_of_domain). */
    const surrogateLayers = () => ((job.spec && job.spec.network) || []).some((L) => L && L.surrogate !== undefined &&
      L.via !== 'device' && L.via !== 'exact');
    const hasMetric = (d) => !d.only || (job.result && job.result.out_of_domain !== null &&
      job.result.out_of_domain !== undefined) || (!FINAL.has(job.state) && surrogateLayers());
    const defs = (CHARTS[job.type] || []).filter(hasMetric);
    const chartObjs = defs.map((d) => ({ d, c: new Chart(charts, d.key, d.title, X_LABEL[d.x], {
      y: d.y(job.spec), log: d.log, startLog: d.startLog && log.checked, smooth: () => +sm.value,
      markers: () => epochMarkers(d.x === 'step') }) }));
    if (!chartObjs.length || !chartObjs.some(({ d }) => d.log)) log.parentNode.hidden = true;
    if (!chartObjs.length) optionsRow.hidden = true;
    let other = null;

    const drawCharts = () => {
      for (const { d, c } of chartObjs) {
        const series = d.names.filter((n) => metrics.has(n)).map((n) => {
          const s = metrics.get(n);
          return { label: n, xs: d.x === 'step' ? s.steps : s.epochs, ys: s.ys };
        });
        c.update(series);
      }
      hideEmpty();
      if (job.type === 'evaluate') {
        const rows = Array.from(metrics.entries()).map(([n, s]) => el('tr', {}, el('th', { scope: 'row', text: n }),
          el('td', { class: 'num', text: fmtNum(s.ys[s.ys.length - 1]) })));
        if (!other) { other = el('section', { class: 'card' }, el('h2', { text: 'Figures' })); charts.append(other); }
        other.replaceChildren(el('h2', { text: 'Figures' }), el('table', {}, el('tbody', {}, rows)));
      }
    };
    const chartObjsExtra = [];
    let histLoaded = false, sweepShown = false, sideShown = false;
    let pending = null;
    const schedule = () => { if (!pending) pending = setTimeout(() => { pending = null; drawCharts(); }, 200); };

    const renderJob = () => {
      title.replaceChildren(`${job.name || '(unnamed)'} `, el('span', { class: 'muted', text: `#${job.id} · ${job.type} ` }), stateBadge(job.state));
      title.setAttribute('data-state', job.state);
      const f = [['owner', job.owner], ['state', job.state], ['created', fmtTime(job.created)], ['started', fmtTime(job.started)],
        ['finished', fmtTime(job.finished)], ['duration', fmtDuration(job)], ['headline', headline(job) || '–']];
      facts.replaceChildren(...f.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]),
        el('dt', { text: 'progress' }), el('dd', {}, progressBar(job) || '–'));
      if (job.error) facts.append(el('dt', { text: 'error' }), el('dd', { class: 'error', text: job.error }));
      errBox.hidden = !job.error;
      errBox.textContent = job.error ? `This run ${job.state === 'canceled' ? 'was canceled' : 'failed'}: ${job.error}` : '';
      if (FINAL.has(job.state) && histLoaded && !sweepShown) showSweep();
      if (FINAL.has(job.state) && histLoaded && job.type === 'evaluate' && !sideShown) {
        sideShown = true;
        if (job.result && Array.isArray(job.result.chips)) chipsStrip(extra, job.result, job);
        evaluateSideBySide(extra, job).catch((e) => { if (e.status !== 401) extra.append(el('p', { class: 'error', text: 'cannot compare: ' + e.message })); });
      }
      const mine = !auth.who || auth.who.admin || auth.who.name === job.owner;
      cancel.hidden = FINAL.has(job.state) || !mine; // only the owner or an admin may cancel
      const specText = JSON.stringify(job.spec), resultText = JSON.stringify(job.result);
      if (specCard.dataset.shown !== specText) { specCard.dataset.shown = specText; specCard.lastChild.replaceWith(jsonView(job.spec, 'spec')); }
      if (resultCard.dataset.shown !== resultText + job.state) {
        resultCard.dataset.shown = resultText + job.state;
        resultCard.lastChild.replaceWith(job.result ? jsonView(job.result, 'result')
          : el('pre', { id: 'result', text: FINAL.has(job.state) ? 'none' : 'not yet' }));
      }
    };
    cancel.addEventListener('click', async () => {
      if (!confirm(`Cancel job ${job.id} (${job.name})?`)) return;
      cancel.disabled = true;
      try {
        const r = await api(`/v1/jobs/${job.id}/cancel`, { method: 'POST' });
        cancelMsg.textContent = r.cancel_requested ? 'cancel requested; the run stops at its next step' : 'canceled';
      } catch (e) {
        cancelMsg.textContent = e.status === 403 ? 'only the owner or an admin may cancel this run' : 'cannot cancel: ' + e.message;
        cancelMsg.className = 'error';
      }
      cancel.disabled = false;
    });
    /* A finished run draws no chart without points: a run that failed
     * before its first epoch shows why instead of empty frames. */
    function hideEmpty() {
      if (!FINAL.has(job.state) || !histLoaded) return;
      let shown = 0;
      for (const { c } of chartObjs) {
        const empty = c.host.getAttribute('data-points') === '0';
        c.card.hidden = empty;
        if (!empty) shown++;
      }
      if (!shown) optionsRow.hidden = true;
      if (chartObjs.length && !shown) {
        chartsNote.hidden = false;
        chartsNote.textContent = job.state === 'failed' ? 'No charts: the run failed before it recorded a metric.'
          : 'No charts: the run recorded no metric.';
      }
    }
    /* A sweep's response: the swept points and the failed rows, with the status counts. */
    function showSweep() {
      if (job.type !== 'sweep' || !job.result) return;
      sweepShown = true;
      extra.replaceChildren();
      sweepResponse(extra, job, chartObjsExtra).catch((e) => {
        if (e.status !== 401) extra.append(el('p', { class: 'error', text: 'cannot draw the response: ' + e.message }));
      });
    }
    log.addEventListener('change', () => { for (const { c } of chartObjs) c.setLog(log.checked); });
    sm.addEventListener('input', () => { smVal.textContent = (+sm.value).toFixed(2); schedule(); });
    renderJob();

    // History first (decimated by the server), then the live stream from there.
    const hist = await api(`/v1/jobs/${job.id}/metrics?max_points=${HISTORY_POINTS}`);
    for (const m of hist.metrics) add(m);
    if (hist.next > lastId) lastId = hist.next;
    histLoaded = true;
    drawCharts();
    if (job.type === 'sweep' && !FINAL.has(job.state))
      extra.append(el('p', { class: 'muted', id: 'sweep-wait', text: 'The response is drawn when the sweep finishes.' }));
    renderJob();
    const onResize = () => { for (const { c } of chartObjs) c.resize(); for (const c of chartObjsExtra) c.resize(); };
    window.addEventListener('resize', onResize);
    const timer = setInterval(() => { if (!FINAL.has(job.state)) renderJob(); }, 1000);
    const sse = sseFollow(`/v1/jobs/${job.id}/events`, lastId, (type, data) => {
      if (type === 'metric') { add(data); schedule(); }
      else if (type === 'state') { job = Object.assign({}, job, data, { spec: data.spec || job.spec }); renderJob(); schedule(); }
      else if (type === 'progress') { job.progress = data; renderJob(); }
    }, () => FINAL.has(job.state));
    stopper(() => { sse.stop(); clearInterval(timer); clearTimeout(pending); window.removeEventListener('resize', onResize);
      for (const { c } of chartObjs) c.destroy(); for (const c of chartObjsExtra) c.destroy(); });
  }

  // ---- compare -------------------------------------------------------------------

  /* A metric's axis label with its unit, for the runs it is drawn for. */
  function metricAxis(metric, jobs) {
    if (/accuracy$/.test(metric)) return 'accuracy (fraction, 0–1)';
    if (metric === 'val_rmse') return 'RMSE (device output units)';
    if (metric.startsWith('out_of_domain')) return 'fraction of drives (0–1)';
    const labels = new Set(jobs.map((j) => (j.type === 'fit' ? 'MSE (standardised, unitless)' : lossAxis(j.spec))));
    return labels.size === 1 ? Array.from(labels)[0] : 'loss (cross-entropy in nats, or MSE: see each run)';
  }

  /* The leaves of a JSON value as [path, value] ("optimizer/lr", 0.01). */
  function leaves(v, path, out) {
    out = out || [];
    if (v !== null && typeof v === 'object') {
      const keys = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
      if (!keys.length) out.push([path, JSON.stringify(v)]);
      for (const k of keys) leaves(v[k], path ? `${path}/${k}` : String(k), out);
    } else out.push([path, v]);
    return out;
  }

  /*
   * Runs side by side (as MLflow's comparison): one chart per chosen metric
   * against epoch, step or wall time, legends showing each run's last value;
   * a table of every spec entry (hyperparameters) and every final figure of
   * the result, rows that differ marked; the spec diff (only the entries
   * that differ). Train, fit and evaluate runs can be compared.
   */
  async function viewCompare(root, _m, query) {
    root.append(el('h1', { text: 'Compare runs' }));
    const ids = (query.get('ids') || '').split(',').filter((x) => /^\d+$/.test(x)).map(Number);
    const xMode = ['epoch', 'step', 'time'].includes(query.get('x')) ? query.get('x') : 'epoch';
    const all = await apiList('/v1/jobs', 'jobs');
    const list = el('fieldset', { class: 'row' }, el('legend', { text: 'Runs' }),
      all.filter((j) => j.type === 'train' || j.type === 'fit' || j.type === 'evaluate').sort((a, b) => b.id - a.id).slice(0, 200).map((j) => {
        const box = el('input', { type: 'checkbox', value: j.id, id: 'cmp-' + j.id, 'data-run': j.id });
        box.checked = ids.includes(j.id);
        return el('label', { for: 'cmp-' + j.id }, box, ` #${j.id} ${j.name} (${j.type})`);
      }));
    const xSel = el('select', { id: 'cmp-x' }, [['epoch', 'epoch'], ['step', 'optimizer step'], ['time', 'wall time']]
      .map(([v, t]) => el('option', { value: v, text: t })));
    xSel.value = xMode;
    const metricBox = el('fieldset', { class: 'row', id: 'cmp-metrics' }, el('legend', { text: 'Metrics' }));
    const go = el('button', { type: 'button', class: 'primary', id: 'cmp-show' }, 'Show');
    const chosenMetrics = () => Array.from(metricBox.querySelectorAll('input:checked')).map((b) => b.value);
    go.addEventListener('click', () => {
      const chosen = Array.from(list.querySelectorAll('input:checked')).map((b) => b.value);
      location.hash = `#/compare?ids=${chosen.join(',')}&metrics=${chosenMetrics().join(',')}&x=${xSel.value}`;
    });
    xSel.addEventListener('change', () => go.click());
    root.append(el('div', { class: 'row' }, el('label', { for: 'cmp-x', text: 'x axis ' }), xSel, go), list, metricBox);
    if (!ids.length) { root.append(el('p', { class: 'muted', text: 'Choose runs above (or tick them in the runs table) to compare them.' })); return; }

    // Each run's record (with its spec) and its metrics, by name.
    const runs = await Promise.all(ids.map(async (id) => {
      const [job, r] = await Promise.all([api('/v1/jobs/' + id), api(`/v1/jobs/${id}/metrics?max_points=${HISTORY_POINTS}`)]);
      const byName = new Map();
      for (const m of r.metrics) {
        if (!isFigure(m.name)) continue;
        if (!byName.has(m.name)) byName.set(m.name, []);
        byName.get(m.name).push(m);
      }
      return { job, byName };
    }));
    const names = Array.from(new Set(runs.flatMap((r) => Array.from(r.byName.keys())))).sort();
    let wanted = (query.get('metrics') || query.get('metric') || '').split(',').filter((n) => names.includes(n));
    if (!wanted.length) wanted = ['test_loss', 'val_rmse', 'loss'].filter((n) => names.includes(n)).slice(0, 1);
    metricBox.append(...names.map((n) => {
      const b = el('input', { type: 'checkbox', value: n, id: 'cmp-m-' + n });
      b.checked = wanted.includes(n);
      b.addEventListener('change', () => go.click());
      return el('label', { for: 'cmp-m-' + n }, b, ' ' + n);
    }));
    if (!names.length) metricBox.append(el('span', { class: 'muted', text: 'These runs recorded no metric.' }));

    const log = el('input', { type: 'checkbox', id: 'cmp-log' });
    root.append(el('div', { class: 'row' }, el('label', {}, log, ' log scale')));
    const grid = el('div', { class: 'grid' });
    root.append(grid);
    const xLabel = xMode === 'time' ? 'wall time since the run started (s)' : X_LABEL[xMode];
    const xOf = (run, m) => (xMode === 'time' ? m.time - (run.job.started ? Date.parse(run.job.started) / 1000 : run.byName.values().next().value[0].time) : m[xMode]);
    const charts = wanted.map((metric) => {
      const c = new Chart(grid, 'compare-' + metric, `${metric} by ${xMode === 'time' ? 'wall time' : X_LABEL[xMode]}`, xLabel,
        { log: true, height: 320, y: metricAxis(metric, runs.map((r) => r.job)) });
      c.update(runs.filter((r) => r.byName.has(metric)).map((r) => {
        const ms = r.byName.get(metric);
        return { label: `#${r.job.id} ${r.job.name || ''}`, xs: ms.map((m) => xOf(r, m)), ys: ms.map((m) => m.value) };
      }));
      return c;
    });
    log.addEventListener('change', () => charts.forEach((c) => c.setLog(log.checked)));

    // Hyperparameters and final figures, one column per run.
    const specs = runs.map((r) => new Map(leaves(r.job.spec, '')));
    const results = runs.map((r) => new Map(leaves(r.job.result || {}, '').filter(([, v]) => typeof v === 'number')));
    const paths = (maps) => Array.from(new Set(maps.flatMap((m) => Array.from(m.keys()))));
    const show = (v) => (v === undefined ? '(absent)' : typeof v === 'number' && String(v).length > 8 ? fmtNum(v) : String(v));
    const differs = (maps, p) => new Set(maps.map((m) => JSON.stringify(m.get(p) === undefined ? null : m.get(p)))).size > 1;
    const headRow = el('tr', {}, el('th', { scope: 'col', text: '' }), runs.map((r) => el('th', { scope: 'col' }, refLink('jobs', r.job.id, `#${r.job.id} ${r.job.name || ''}`))));
    const section = (title, maps, onlyDiff) => [el('tr', { class: 'section' }, el('th', { scope: 'rowgroup', colspan: runs.length + 1, text: title }))]
      .concat(paths(maps).filter((p) => !onlyDiff || differs(maps, p)).map((p) => el('tr', { 'data-path': p, 'data-differs': differs(maps, p) ? '1' : '0',
        class: differs(maps, p) ? 'differs' : null }, el('th', { scope: 'row', text: p }), maps.map((m) => el('td', { class: 'num', text: show(m.get(p)) })))));
    const facts = runs.map((r) => new Map([['type', r.job.type], ['state', r.job.state], ['duration', fmtDuration(r.job)]]));
    const table = el('table', { id: 'cmp-params' }, el('thead', {}, headRow),
      el('tbody', {}, section('run', facts), section('spec (hyperparameters)', specs), section('final figures (result)', results)));
    const diffRows = section('spec diff', specs, true).slice(1);
    const diff = el('table', { id: 'cmp-diff' }, el('thead', {}, headRow.cloneNode(true)), el('tbody', {}, diffRows.length ? diffRows
      : el('tr', {}, el('td', { colspan: runs.length + 1, class: 'muted', text: 'The specs are the same.' }))));
    root.append(el('section', { class: 'card spaced', 'aria-label': 'Spec diff' },
      el('div', { class: 'card-head' }, el('h2', { text: 'Spec diff: the entries that differ' }), el('span', { class: 'tools' }, tableCsvButton(diff, 'spec diff'))),
      el('div', { class: 'table-wrap' }, diff)),
    el('section', { class: 'card spaced', 'aria-label': 'Hyperparameters and final figures' },
      el('div', { class: 'card-head' }, el('h2', { text: 'Hyperparameters and final figures' }), el('span', { class: 'tools' }, tableCsvButton(table, 'runs compared'))),
      el('div', { class: 'table-wrap' }, table)));
    const onResize = () => charts.forEach((c) => c.resize());
    window.addEventListener('resize', onResize);
    stopper(() => { window.removeEventListener('resize', onResize); charts.forEach((c) => c.destroy()); });
  }

  // ---- devices -------------------------------------------------------------------

  function simpleList(root, items, cols, href) {
    const tbody = el('tbody', {}, items.map((it) => el('tr', {}, cols.map(([k, f], i) =>
      el('td', {}, i === 0 ? el('a', { href: href(it), text: f ? f(it) : it[k] }) : (f ? f(it) : (it[k] === null || it[k] === undefined ? '–' : String(it[k]))))))));
    if (!items.length) tbody.append(el('tr', {}, el('td', { colspan: cols.length, class: 'muted', text: 'None yet.' })));
    const table = el('table', {}, el('thead', {}, el('tr', {}, cols.map(([k]) => el('th', { scope: 'col', text: k })))), tbody);
    root.append(el('div', { class: 'table-wrap' }, table), el('p', { class: 'row' }, tableCsvButton(table, (root.querySelector('h1') || {}).textContent || 'list')));
  }

  async function viewDevices(root) {
    root.append(el('h1', { text: 'Devices' }));
    const items = await apiList('/v1/devices', 'devices');
    simpleList(root, items, [['name', (d) => d.name || `device ${d.id}`], ['id'], ['kind'], ['created', (d) => fmtTime(d.created)]],
      (d) => '#/devices/' + d.id);
  }

  /* The drive names of a device spec (dot: u1; dot_sq: u1, u2). */
  function driveNames(spec) {
    const drive = (spec && spec.drive) || 'dot';
    if (drive === 'dot_sq') return ['u1', 'u2'];
    if (drive === 'full') { const k = (spec && spec.fan_in) || 1; const n = []; for (let i = 1; i <= k; i++) n.push('x' + i); for (let i = 1; i <= k; i++) n.push('a' + i); return n; }
    return ['u1'];
  }

  function numInput(id, label, value, step) {
    const i = el('input', { type: 'number', id, value, step: step || 'any' });
    return [el('label', { for: id, text: label + ' ' }), i];
  }

  /* The newest succeeded sweep of device dev (its spec names the device by id or name), or null. */
  async function deviceSweep(dev) {
    const sweeps = (await apiList('/v1/jobs', 'jobs')).filter((j) => j.type === 'sweep' && j.state === 'succeeded')
      .sort((a, b) => b.id - a.id).slice(0, 40);
    for (let i = 0; i < sweeps.length; i += 8) {
      const full = await Promise.all(sweeps.slice(i, i + 8).map((j) => api('/v1/jobs/' + j.id)));
      for (const j of full) {
        const d = j.spec && j.spec.device;
        const ref = d !== null && typeof d === 'object' ? (d.id !== undefined ? d.id : d.name) : d;
        if (ref === dev.id || (dev.name && ref === dev.name)) return j;
      }
    }
    return null;
  }

  async function viewDevice(root, [id]) {
    const dev = await api('/v1/devices/' + encodeURIComponent(id));
    const names = driveNames(dev.spec);
    /* The drive range defaults to the device's own sweep's, when it has one. */
    const sweep = await deviceSweep(dev);
    const ranges = (sweep && sweep.spec.ranges) || {};
    const r0 = ranges[names[0]] || [-4, 4];
    root.append(el('p', {}, el('a', { href: '#/devices', text: '← Devices' })),
      el('h1', { text: `${dev.name || 'device ' + dev.id} ` }, el('span', { class: 'muted', text: `#${dev.id} · ${dev.kind}` })));
    const inSel = el('select', { id: 'sim-input' }, names.map((n) => el('option', { value: n, text: n })));
    const [lFrom, from] = numInput('sim-from', 'from', r0[0]);
    const [lTo, to] = numInput('sim-to', 'to', r0[1]);
    const [lPts, pts] = numInput('sim-points', 'points', 101, 1);
    const [lAt, at] = numInput('sim-at', 'trajectory at', ranges[names[0]] ? (r0[0] + r0[1]) / 2 : 1);
    inSel.addEventListener('change', () => {
      const r = ranges[inSel.value];
      if (r) { from.value = r[0]; to.value = r[1]; at.value = (r[0] + r[1]) / 2; }
    });
    const fixed = el('input', { type: 'text', id: 'sim-fixed', value: JSON.stringify(Object.fromEntries(names.slice(1).map((n) => [n, 0]))) });
    const run = el('button', { type: 'button', class: 'primary', id: 'sim-run' }, 'Simulate');
    const msg = el('p', { role: 'status', class: 'muted' });
    const grid = el('div', { class: 'grid' });
    root.append(el('div', { class: 'row', role: 'group', 'aria-label': 'Response curve' },
      el('span', {}, el('label', { for: 'sim-input', text: 'drive ' }), inSel), el('span', {}, lFrom, from), el('span', {}, lTo, to),
      el('span', {}, lPts, pts), el('span', {}, lAt, at),
      names.length > 1 ? el('span', {}, el('label', { for: 'sim-fixed', text: 'other inputs ' }), fixed) : null, run),
    el('p', { class: 'legend-note', id: 'sim-range-note' }, sweep ? ['drive range from this device\'s sweep ', refLink('jobs', sweep.id)]
      : 'no sweep of this device yet: the drive range is a default'), msg, grid);
    const un = deviceUnits(dev);
    const hh = dev.kind === 'hodgkin_huxley';
    const curve = new Chart(grid, 'response', 'Response curve: output against the drive', inputAxis(names[0], un), { y: un.out });
    const traj = new Chart(grid, 'trajectory', 'Trajectory', un.t, hh ? { y: un.state, y2: un.gates, y2Range: [0, 1] } : { y: un.state });
    const info = el('section', { class: 'card spaced' }, el('h2', { text: 'Spec' }), el('pre', { text: JSON.stringify(dev.spec, null, 2) }));
    root.append(info);
    const simulate = async () => {
      run.disabled = true;
      msg.textContent = 'solving…';
      try {
        let others = {};
        if (names.length > 1) others = JSON.parse(fixed.value || '{}');
        const input = inSel.value;
        delete others[input];
        const body = { curve: { input, from: +from.value, to: +to.value, points: Math.max(2, Math.min(1000, +pts.value | 0)) } };
        if (names.length > 1) body.inputs = others;
        const c = await api(`/v1/devices/${dev.id}/simulate`, { method: 'POST', body });
        if (curve.xLabel !== inputAxis(input, un)) { curve.xLabel = inputAxis(input, un); curve.sig = ''; }
        curve.update([{ label: 'output', xs: c.curve.x, ys: c.curve.out }]);
        const bad = c.curve.status.filter((s) => s !== 'ok').length;
        const tin = Object.assign({}, others, { [input]: +at.value });
        const t = await api(`/v1/devices/${dev.id}/simulate`, { method: 'POST', body: { inputs: tin, max_points: 500 } });
        if (t.trajectory) {
          /* Hodgkin–Huxley's gates live in [0, 1], V in tens of mV: the gates get their own axis. */
          const series = t.trajectory.states.map((n, j) => ({ label: n, xs: t.trajectory.t, ys: t.trajectory.y.map((r) => r[j]),
            scale: hh && n !== 'V' ? 'y2' : 'y' }));
          if (t.trajectory.states.length > 1 && !hh) series.push({ label: 'output', xs: t.trajectory.t, ys: t.trajectory.out });
          traj.update(series);
        }
        msg.textContent = `${c.curve.x.length} points` + (bad ? `, ${bad} failed to solve` : '') +
          `; trajectory at ${input} = ${at.value}: output ${fmtNum(t.output)} (${t.status})`;
      } catch (e) {
        if (e.status !== 401) { msg.textContent = 'cannot simulate: ' + e.message; msg.className = 'error'; }
      }
      run.disabled = false;
    };
    run.addEventListener('click', simulate);
    const onResize = () => { curve.resize(); traj.resize(); };
    window.addEventListener('resize', onResize);
    stopper(() => { window.removeEventListener('resize', onResize); curve.destroy(); traj.destroy(); });
    await simulate();
  }

  // ---- datasets and surrogates ------------------------------------------------

  /* Parses the CSV the daemon writes (a header, then numbers; `status` may be text). */
  function parseCsv(text) {
    const lines = text.split('\n').filter((l) => l.length);
    const head = lines[0].split(',').map((s) => s.trim().replace(/^"|"$/g, ''));
    const cols = head.map(() => []);
    for (let i = 1; i < lines.length; i++) {
      const f = lines[i].split(',');
      for (let j = 0; j < head.length; j++) {
        const v = f[j] === undefined ? '' : f[j].trim();
        const n = Number(v);
        cols[j].push(v === '' ? null : Number.isNaN(n) ? v : n);
      }
    }
    return { head, cols, n: lines.length - 1 };
  }

  /* Rows sorted by column xi: [xs, ...other columns]. */
  function sortBy(cols, xi) {
    const idx = cols[xi].map((_, i) => i).sort((a, b) => cols[xi][a] - cols[xi][b]);
    return cols.map((c) => idx.map((i) => c[i]));
  }

  const PLOT_MAX_CELLS = 400000;

  async function datasetCsv(ds) {
    if (ds.rows * ds.cols > PLOT_MAX_CELLS) return null;
    return parseCsv(await api(`/v1/datasets/${ds.id}/data`, { raw: true }));
  }

  /*
   * The units of a device's drive, output, time and state, from its kind
   * and readout: Hodgkin–Huxley in µA/cm², Hz or mV, and ms; the other kinds
   * are dimensionless models (arbitrary units).
   */
  function deviceUnits(dev) {
    if (!dev) return NO_UNITS;
    const kind = dev.kind, spec = dev.spec || {};
    const ro = spec.readout && spec.readout.kind;
    if (kind === 'hodgkin_huxley') {
      const r = ro || 'spike_rate';
      return { drive: 'µA/cm²',
        out: r === 'spike_rate' ? 'firing rate (Hz)' : r === 'spike_count' ? 'spike count (spikes)' : `V, ${r.replace(/_/g, ' ')} (mV)`,
        t: 't (ms)', state: 'V (mV)', gates: 'gates m, h, n (0–1)' };
    }
    const r = ro || (kind === 'neuron' || kind === 'almost_neuron' ? '' : 'steady_state');
    return { drive: 'a.u.', out: `output${r ? ', ' + r.replace(/_/g, ' ') : ''} (a.u.)`, t: 't (model time units)',
      state: 'state (a.u.)' };
  }
  const NO_UNITS = { drive: 'a.u.', out: 'out (a.u.)', t: 't', state: 'state' };

  /* The device a spec refers to (an id, a name, {"id": N} or an inline object); null when unknown. */
  async function deviceOf(ref) {
    try {
      if (ref && typeof ref === 'object' && ref.kind) return { kind: ref.kind, spec: ref };
      const id = ref && typeof ref === 'object' ? ref.id : ref;
      if (id === undefined || id === null) return null;
      return await api('/v1/devices/' + encodeURIComponent(id));
    } catch (e) {
      if (e.status === 401) throw e;
      return null;
    }
  }

  /* The device behind a sweep dataset (its job's device); null for other datasets. */
  async function datasetDevice(ds) {
    if (ds.source !== 'sweep' || !ds.job) return null;
    try { return await deviceOf((await api('/v1/jobs/' + ds.job)).spec.device); } catch (e) { if (e.status === 401) throw e; return null; }
  }

  /* An input column's axis label: drives (u1, u2) carry the device's drive unit. */
  const inputAxis = (name, un) => (/^u\d+$/.test(name) ? `drive ${name} (${un.drive})` : `${name} (a.u.)`);

  /*
   * The response of a sweep: out against its first input, solved rows in
   * blue, failed rows (no output) as red points along the bottom of the axis.
   * Returns the chart, or null when the columns are not a sweep's.
   */
  function responseChart(parent, csv, un, key) {
    const oi = csv.head.indexOf('out'), si = csv.head.indexOf('status');
    const inputs = csv.head.map((h, i) => i).filter((i) => i !== oi && i !== si);
    if (!inputs.length || oi < 0) return null;
    const s = sortBy(csv.cols, inputs[0]);
    const ok = s[0].map((_, i) => (si < 0 || s[si][i] === 'ok' || s[si][i] === 0) && typeof s[oi][i] === 'number');
    const xl = csv.head[inputs[0]];
    const c = new Chart(parent, key, `Response: ${un.out.replace(/ \(.*$/, '')} against ${xl}`, inputAxis(xl, un),
      { points: true, y: un.out });
    const okYs = s[oi].filter((_, i) => ok[i]);
    const series = [{ label: 'solved', xs: s[0].filter((_, i) => ok[i]), ys: okYs, color: '#1f5fbf' }];
    const nbad = ok.filter((v) => !v).length;
    const floor = okYs.length ? Math.min(...okYs) : 0;
    if (nbad) series.push({ label: 'failed (no output)', color: '#b3261e', xs: s[0].filter((_, i) => !ok[i]), ys: s[0].filter((_, i) => !ok[i]).map(() => floor) });
    c.update(series);
    c.host.setAttribute('data-failed', String(nbad));
    c.note.textContent = `${csv.n} rows` + (nbad ? `; ${nbad} failed to solve, drawn in red along the bottom of the axis` : '') +
      (inputs.length > 1 ? ` (${inputs.length} inputs; plotted against ${xl})` : '');
    return c;
  }

  /* A sweep job's response chart and its status counts, appended to parent; charts collects the charts. */
  async function sweepResponse(parent, job, charts) {
    const r = job.result;
    const counts = r.statuses || { ok: r.rows - (r.failed || 0) };
    const total = Object.values(counts).reduce((a, b) => a + b, 0) || 1;
    const ordered = Object.entries(counts).sort((a, b) => (a[0] === 'ok' ? -1 : b[0] === 'ok' ? 1 : b[1] - a[1]));
    const table = el('table', { id: 'sweep-statuses' },
      el('thead', {}, el('tr', {}, ['status', 'rows', 'fraction'].map((t, i) => el('th', { scope: 'col', class: i ? 'num' : null, text: t })))),
      el('tbody', {}, ordered.map(([k, n]) => el('tr', { 'data-status': k }, el('td', {}, k === 'ok' ? 'ok (solved)' : el('span', { class: 'error', text: k })),
        el('td', { class: 'num', text: n }), el('td', { class: 'num', text: pct(n / total) })))));
    const ds = await api('/v1/datasets/' + r.dataset);
    const un = deviceUnits(await deviceOf(job.spec && job.spec.device));
    const csv = await datasetCsv(ds);
    if (csv) {
      const c = responseChart(parent, csv, un, 'response');
      if (c) charts.push(c);
    } else {
      parent.append(el('p', { class: 'muted', text: `Too large to plot here (${ds.rows} rows).` }));
    }
    parent.append(el('section', { class: 'card', 'aria-label': 'Status counts' },
      el('div', { class: 'card-head' }, el('h2', { text: 'Rows by solver status' }), el('span', { class: 'tools' }, tableCsvButton(table, 'sweep statuses'))), table,
      el('p', { class: 'legend-note' }, 'The swept points are dataset ', el('a', { href: '#/datasets/' + ds.id, text: `#${ds.id}` }), '.')));
  }

  async function viewDatasets(root) {
    root.append(el('h1', { text: 'Datasets' }));
    const items = await apiList('/v1/datasets', 'datasets');
    simpleList(root, items, [['name', (d) => d.name || `dataset ${d.id}`], ['id'], ['source'], ['rows'], ['cols'],
      ['job', (d) => refLink('jobs', d.job)], ['created', (d) => fmtTime(d.created)]], (d) => '#/datasets/' + d.id);
  }

  async function viewDataset(root, [id]) {
    const ds = await api('/v1/datasets/' + encodeURIComponent(id));
    root.append(el('p', {}, el('a', { href: '#/datasets', text: '← Datasets' })),
      el('h1', { text: `${ds.name || 'dataset ' + ds.id} ` }, el('span', { class: 'muted', text: `#${ds.id} · ${ds.source}` })),
      factList([['rows', ds.rows], ['columns', (ds.columns || []).join(', ')], ['made by job', refLink('jobs', ds.job)],
        ['created', fmtTime(ds.created)]]));
    const csv = await datasetCsv(ds);
    if (!csv) { root.append(el('p', { class: 'muted', text: 'Too large to plot here; download it from GET /v1/datasets/' + ds.id + '/data.' })); return; }
    const grid = el('div', { class: 'grid' });
    root.append(grid);
    const oi = csv.head.indexOf('out'), si = csv.head.indexOf('status');
    const inputs = csv.head.map((h, i) => i).filter((i) => i !== oi && i !== si);
    const charts = [];
    const un = deviceUnits(await datasetDevice(ds));
    const c = responseChart(grid, csv, un, 'samples');
    if (c) {
      charts.push(c);
      if (inputs.length >= 2) {
        const s2 = sortBy(csv.cols, inputs[0]);
        const d = new Chart(grid, 'design', `Design: ${csv.head[inputs[1]]} against ${csv.head[inputs[0]]}`,
          inputAxis(csv.head[inputs[0]], un), { points: true, y: inputAxis(csv.head[inputs[1]], un) });
        d.update([{ label: csv.head[inputs[1]], xs: s2[0], ys: s2[inputs[1]] }]);
        charts.push(d);
      }
    } else {
      root.append(el('p', { class: 'muted', text: 'Columns: ' + csv.head.join(', ') }));
    }
    const onResize = () => charts.forEach((c) => c.resize());
    window.addEventListener('resize', onResize);
    stopper(() => { window.removeEventListener('resize', onResize); charts.forEach((c) => c.destroy()); });
  }

  async function viewSurrogates(root) {
    root.append(el('h1', { text: 'Surrogates' }));
    const items = await apiList('/v1/surrogates', 'surrogates');
    simpleList(root, items, [['name', (s) => s.name || `surrogate ${s.id}`], ['id'], ['inputs'], ['val_rmse', (s) => fmtNum(s.val_rmse)],
      ['max_error', (s) => fmtNum(s.max_error)], ['device', (s) => specRef('devices', s.device)], ['dataset', (s) => refLink('datasets', s.dataset)],
      ['job', (s) => refLink('jobs', s.job)], ['created', (s) => fmtTime(s.created)]],
    (s) => '#/surrogates/' + s.id);
  }

  const ACT = {
    identity: (v) => v, relu: (v) => (v > 0 ? v : 0), sigmoid: (v) => 1 / (1 + Math.exp(-v)), tanh: Math.tanh,
    softplus: (v) => (v > 20 ? v : Math.log1p(Math.exp(v))),
  };

  /* The frozen surrogate's output for drives u (as the engine computes it, in double). */
  function surrogateEval(w, u) {
    let h = u.map((v, k) => (v - w.in_mean[k]) / w.in_std[k]);
    for (const L of w.layers) {
      const f = ACT[L.activation] || ACT.identity, o = new Array(L.out);
      for (let r = 0; r < L.out; r++) {
        let z = L.b[r];
        for (let c = 0; c < L.in; c++) z += L.w[r * L.in + c] * h[c];
        o[r] = f(z);
      }
      h = o;
    }
    return h[0] * w.out_std + w.out_mean;
  }

  async function viewSurrogate(root, [id]) {
    const s = await api('/v1/surrogates/' + id);
    const dom = s.domain ? s.domain.lo.map((lo, k) => `[${fmtNum(lo)}, ${fmtNum(s.domain.hi[k])}]`).join(' × ')
      : 'not recorded (fitted before domains were kept)';
    root.append(el('p', {}, el('a', { href: '#/surrogates', text: '← Surrogates' })),
      el('h1', { text: `${s.name || 'surrogate ' + s.id} ` }, el('span', { class: 'muted', text: `#${s.id}` })),
      factList([['device', specRef('devices', s.device)],
        ['dataset', refLink('datasets', s.dataset)], ['inputs', s.inputs], ['val RMSE', fmtNum(s.val_rmse)], ['max error', fmtNum(s.max_error)],
        ['domain', dom], ['made by job', refLink('jobs', s.job)]]));
    if (!s.dataset || !s.weights) { root.append(el('p', { class: 'muted', text: 'No sweep dataset to compare against.' })); return; }
    const ds = await api('/v1/datasets/' + s.dataset);
    const csv = await datasetCsv(ds);
    if (!csv) { root.append(el('p', { class: 'muted', text: 'The sweep is too large to plot here.' })); return; }
    const oi = csv.head.indexOf('out'), si = csv.head.indexOf('status');
    const inputs = csv.head.map((h, i) => i).filter((i) => i !== oi && i !== si).slice(0, s.inputs);
    const srt = sortBy(csv.cols, inputs[0]);
    const xs = [], dev = [], sur = [], res = [];
    for (let i = 0; i < srt[0].length; i++) {
      if (si >= 0 && !(srt[si][i] === 'ok' || srt[si][i] === 0)) continue;
      const y = surrogateEval(s.weights, inputs.map((k) => srt[k][i]));
      xs.push(srt[inputs[0]][i]); dev.push(srt[oi][i]); sur.push(y); res.push(y - srt[oi][i]);
    }
    let rmse = 0, maxe = 0;
    for (const r of res) { rmse += r * r; maxe = Math.max(maxe, Math.abs(r)); }
    rmse = Math.sqrt(rmse / Math.max(1, res.length));
    const grid = el('div', { class: 'grid' });
    root.append(grid);
    const xl = csv.head[inputs[0]];
    /* The domain's edges on the plot of its first input: beyond them the
     * surrogate answers for the nearest point inside (clamped). */
    const edges = s.domain ? [s.domain.lo[0], s.domain.hi[0]] : [];
    const un = deviceUnits(s.device && typeof s.device === 'object' && s.device.kind ? { kind: s.device.kind, spec: s.device } : null);
    const c1 = new Chart(grid, 'surrogate', `Device points and the surrogate against ${xl}`, inputAxis(xl, un), {
      points: true, y: un.out, markers: () => edges.map((x) => ({ x, color: 'rgba(179,38,30,0.7)', dash: [6, 4] })) });
    c1.update([{ label: 'device', xs, ys: dev, color: '#868e96' }, { label: 'surrogate', xs, ys: sur, color: '#1f5fbf' }]);
    c1.note.textContent = `${xs.length} sweep points` + (inputs.length > 1 ? ` (${inputs.length} drives; plotted against ${xl})` : '') +
      (s.domain ? `; red dashed: the domain's edges in ${xl} (outside, drives are clamped to it)` : '');
    const c2 = new Chart(grid, 'residuals', 'Residuals (surrogate − device)', inputAxis(xl, un),
      { points: true, y: 'surrogate − device' + (un.out.match(/ \(.*\)$/) || [' (a.u.)'])[0] });
    c2.update([{ label: 'residual', xs, ys: res, color: '#d9480f' }]);
    c2.note.textContent = `RMSE over every point ${fmtNum(rmse)}, max |error| ${fmtNum(maxe)}`;
    const onResize = () => { c1.resize(); c2.resize(); };
    window.addEventListener('resize', onResize);
    stopper(() => { window.removeEventListener('resize', onResize); c1.destroy(); c2.destroy(); });
  }

  // ---- models and their scores ---------------------------------------------------

  /* The model an evaluate job scores: its result's, else what its spec's reference names. */
  function evalModelId(job, models) {
    if (job.result && typeof job.result.model === 'number') return job.result.model;
    const r = job.spec && job.spec.model;
    const by = (f) => { const m = models.find(f); return m ? m.id : null; };
    if (typeof r === 'number') return r;
    if (typeof r === 'string') return by((m) => m.name === r);
    if (r && r.id !== undefined) return r.id;
    if (r && r.job !== undefined) return by((m) => m.job === r.job);
    if (r && r.name !== undefined) return by((m) => m.name === r.name);
    return null;
  }

  /* Which rows a score is over: the dataset reference (keys sorted) and the split. */
  function dataSig(ds, split) {
    const o = ds !== null && typeof ds === 'object' ? ds : { name: ds };
    return JSON.stringify(Object.keys(o).sort().map((k) => [k, o[k]])) + '/' + (split || 'test');
  }

  /* How an evaluation computes each device layer ("layer 0 via device (trained via surrogate)"). */
  function viaText(model, evalJob) {
    const net = (model.spec && model.spec.network) || [];
    const over = Object.assign({}, (evalJob && evalJob.spec && evalJob.spec.via) || {});
    for (const k of Object.keys((evalJob && evalJob.spec && evalJob.spec.surrogates) || {})) if (!over[k]) over[k] = 'surrogate';
    const parts = [];
    net.forEach((L, i) => {
      const trained = L.via || (L.surrogate !== undefined ? 'surrogate' : 'device'), now = over[i];
      if (trained === 'exact' && !now) return;
      parts.push(`layer ${i} via ${now || trained}` + (now && now !== trained ? ` (trained via ${trained})` : ''));
    });
    return parts.length ? parts.join('; ') : 'exact layers only';
  }

  /*
   * A model's scores: the training run's test figures (as trained), then
   * every evaluate job of the model. Each evaluation that computes a layer
   * another way is set against a score as trained over the same rows (an
   * evaluation without overrides, or the training run when the data is the
   * training's test split), else against the training run, marked as over
   * other rows.
   */
  function modelScores(model, train, evals) {
    const rows = [];
    if (train && train.result) {
      rows.push({ kind: 'trained', job: train, via: viaText(model, null) + ' (as trained)', data: 'test split, as trained',
        sig: dataSig(model.spec && model.spec.dataset, 'test'), acc: train.result.test_accuracy, loss: train.result.test_loss,
        rows: null, solves: null, asTrained: true });
    }
    for (const e of evals) {
      const r = e.result || {};
      const n = Object.keys(e.spec.via || {}).length + Object.keys(e.spec.surrogates || {}).length;
      rows.push({ kind: 'evaluate', job: e, via: n ? viaText(model, e) : viaText(model, null) + ' (as trained)',
        data: `${e.spec.split || 'test'} split of ` + (typeof e.spec.dataset === 'object' ? JSON.stringify(e.spec.dataset) : e.spec.dataset),
        sig: dataSig(e.spec.dataset, e.spec.split), acc: r.accuracy, loss: r.loss, rows: r.rows, solves: r.solves, asTrained: n === 0 });
    }
    const trained = rows.find((r) => r.kind === 'trained');
    for (const row of rows) {
      if (row.asTrained) continue;
      const same = rows.find((o) => o.asTrained && o.sig === row.sig && o.kind === 'evaluate' && o.job.state === 'succeeded') ||
        rows.find((o) => o.asTrained && o.sig === row.sig);
      row.ref = same || trained || null;
      row.sameRows = !!same;
    }
    return rows;
  }

  /* The training run and the evaluate jobs of model m, with their specs (the jobs list carries none). */
  async function modelJobs(m, jobs, models) {
    const cands = jobs.filter((j) => j.type === 'evaluate' && (!j.result || j.result.model === m.id));
    const [train, ...full] = await Promise.all([m.job ? api('/v1/jobs/' + m.job).catch((e) => { if (e.status === 401) throw e; return null; })
      : null].concat(cands.map((j) => api('/v1/jobs/' + j.id))));
    return { train, evals: full.filter((j) => evalModelId(j, models) === m.id).sort((a, b) => a.id - b.id) };
  }

  const signed = (v, f) => (typeof v === 'number' && Number.isFinite(v) ? (v > 0 ? '+' : v < 0 ? '−' : '±') + f(Math.abs(v)) : '–');

  async function scoresOf(m, jobs, models) {
    const { train, evals } = await modelJobs(m, jobs, models);
    return modelScores(m, train, evals);
  }

  /* The scores table of a model; the row of job `current` is highlighted. */
  function scoresTable(rows, current) {
    const head = ['job', 'computed', 'data', 'rows', 'accuracy', 'loss', 'solves', 'Δ accuracy', 'Δ loss', 'against'];
    const body = rows.map((r) => {
      const dAcc = r.ref && typeof r.acc === 'number' && typeof r.ref.acc === 'number' ? r.acc - r.ref.acc : null;
      const dLoss = r.ref && typeof r.loss === 'number' && typeof r.ref.loss === 'number' ? r.loss - r.ref.loss : null;
      return el('tr', { 'data-job': r.job.id, 'data-kind': r.kind, class: r.job.id === current ? 'current' : null,
        'data-d-accuracy': dAcc === null ? null : String(dAcc), 'data-d-loss': dLoss === null ? null : String(dLoss) },
      el('td', {}, refLink('jobs', r.job.id)), el('td', { class: 'name', text: r.via }), el('td', { class: 'name', text: r.data }),
      el('td', { class: 'num', text: r.rows === null ? '–' : r.rows }),
      el('td', { class: 'num', text: r.job.state === 'succeeded' ? pct(r.acc) : r.job.state }),
      el('td', { class: 'num', text: fmtNum(r.loss) }), el('td', { class: 'num', text: r.solves === null || r.solves === undefined ? '–' : r.solves }),
      el('td', { class: 'num', text: signed(dAcc, (v) => (100 * v).toFixed(1) + ' pp') }),
      el('td', { class: 'num', text: signed(dLoss, (v) => fmtNum(v)) }),
      el('td', {}, r.ref ? el('span', {}, refLink('jobs', r.ref.job.id), r.sameRows ? '' : ' (other rows)') : '–'));
    });
    if (!rows.length) body.push(el('tr', {}, el('td', { colspan: head.length, class: 'muted', text: 'No scores yet.' })));
    const table = el('table', { class: 'scores' },
      el('thead', {}, el('tr', {}, head.map((t, i) => el('th', { scope: 'col', class: i >= 3 && i <= 8 ? 'num' : null, text: t })))),
      el('tbody', {}, body));
    return el('div', {}, el('div', { class: 'table-wrap' }, table), el('p', { class: 'row' }, tableCsvButton(table, 'scores')));
  }

  async function viewModels(root) {
    root.append(el('h1', { text: 'Models' }));
    const [items, jobs] = await Promise.all([apiList('/v1/models', 'models'), apiList('/v1/jobs', 'jobs')]);
    const trainOf = (m) => jobs.find((j) => j.id === m.job);
    const evals = (m) => jobs.filter((j) => j.type === 'evaluate' && j.result && j.result.model === m.id).length;
    simpleList(root, items, [['name', (m) => m.name || `model ${m.id}`], ['id'], ['job', (m) => refLink('jobs', m.job)],
      ['dataset', (m) => specRef('datasets', m.spec && m.spec.dataset)], ['loss'], ['params'],
      ['test score', (m) => { const t = trainOf(m); return t && t.result ? headline(t) : '–'; }], ['evaluations', evals],
      ['created', (m) => fmtTime(m.created)]], (m) => '#/models/' + m.id);
  }

  async function viewModel(root, [id]) {
    const [m, jobs, models] = await Promise.all([api('/v1/models/' + encodeURIComponent(id)), apiList('/v1/jobs', 'jobs'),
      apiList('/v1/models', 'models')]);
    root.append(el('p', {}, el('a', { href: '#/models', text: '← Models' })),
      el('h1', { text: `${m.name || 'model ' + m.id} ` }, el('span', { class: 'muted', text: `#${m.id}` })),
      factList([['made by job', refLink('jobs', m.job)], ['dataset', specRef('datasets', m.spec && m.spec.dataset)],
        ['inputs', m.inputs], ['outputs', m.outputs], ['classes', m.classes], ['loss', m.loss], ['parameters', m.params],
        ['created', fmtTime(m.created)]]),
      el('section', { class: 'card', 'aria-label': 'Scores' }, el('h2', { text: 'Scores: as trained and evaluated' }),
        scoresTable(await scoresOf(m, jobs, models), null),
        el('p', { class: 'legend-note', text: 'Δ: the evaluation minus the score as trained over the same rows (or the training run\'s test split: "other rows"). Score it another way with an evaluate job: {"type": "evaluate", "spec": {"model": ' + m.id + ', "dataset": ..., "via": {"0": "device"}}}.' })),
      el('section', { class: 'card spaced' }, el('h2', { text: 'Spec' }), jsonView(m.spec, 'spec')));
  }

  /* Whether evaluation e (with its spec) scores the nominal network: no chip, no noise. */
  const isNominalEval = (e) => e.spec && e.spec.chip === undefined && e.spec.chips === undefined && !(e.result && e.result.noise);

  /* What an evaluation computes and on which rows, apart from chips and noise: two
   * evaluations with the same key score the same network the same way on the same rows. */
  const evalKey = (e) => JSON.stringify([e.result && e.result.model, e.spec.via || {}, e.spec.surrogates || {}]) + dataSig(e.spec.dataset, e.spec.split);

  /* The nominal figure of evaluation e among evals (jobs with specs): the latest succeeded
   * evaluation of the same model, computed the same way on the same rows, no chip and no
   * noise; null when there is none. */
  function nominalOf(e, evals) {
    const key = evalKey(e);
    const same = evals.filter((o) => o.id !== e.id && o.state === 'succeeded' && isNominalEval(o) && evalKey(o) === key);
    return same.length ? same[same.length - 1] : null;
  }

  /* The evaluate jobs (with their specs) of the model that evaluation job e scored. */
  async function evalsOfModel(e) {
    const mid = e.result && e.result.model;
    const list = (await apiList('/v1/jobs?type=evaluate', 'jobs')).filter((j) => j.result && j.result.model === mid);
    return (await Promise.all(list.map((j) => api('/v1/jobs/' + j.id)))).sort((a, b) => a.id - b.id);
  }

  /* An evaluation over chips (#12): each chip's score as a strip of points,
   * with the mean, spread and range beside it, then the model's nominal figure
   * (nominalOf) when one has been scored. */
  function chipsStrip(parent, r, job) {
    const acc = r.chips.every((c) => typeof c.accuracy === 'number');
    const key = acc ? 'accuracy' : 'rmse', unit = acc ? 'accuracy (fraction)' : 'RMSE (target units)';
    const xs = r.chips.map((c) => c.chip), ys = r.chips.map((c) => c[key]);
    const c = new Chart(parent, 'chips', `Score per chip (${r.chips.length} chips)`, 'chip (seed)', { points: true, y: unit });
    c.update([{ label: key, xs, ys, color: '#1f5fbf' }]);
    const f = (v) => (acc ? pct(v) : fmtNum(v));
    c.note.textContent = `mean ${f(r[key + '_mean'])} ± ${acc ? (100 * r[key + '_sd']).toFixed(1) + ' pp' : fmtNum(r[key + '_sd'])}` +
      `, min ${f(r[key + '_min'])}, max ${f(r[key + '_max'])}; noise ${r.noise ? 'on' : 'off'}`;
    c.note.setAttribute('data-chips', String(r.chips.length));
    if (!job) return;
    evalsOfModel(job).then((evals) => {
      const nom = nominalOf(job, evals);
      const v = nom && (acc ? nom.result.accuracy : Math.sqrt(nom.result.loss));
      c.note.append(nom ? el('span', { 'data-nominal': String(v) }, '; nominal (no chip, no noise; job ', refLink('jobs', nom.id),
        `): ${acc ? pct(v) : 'RMSE ' + fmtNum(v)}`)
        : el('span', { 'data-nominal': '' }, '; no nominal figure yet (score the model with the same via and data, without "chips")'));
    }).catch((e) => { if (e.status !== 401) c.note.append(' (cannot look up the nominal figure: ' + e.message + ')'); });
  }

  /*
   * A study (#/study, #/study?prefix=NAME): the table of every evaluate job whose name
   * begins with the prefix (default "study ", the names `make study` gives its jobs; its
   * database is build/study/study.db), one row per evaluation in the order they ran: the
   * model and its training run's test score (as trained), how the evaluation computed the
   * network and on which rows, its score (nominal, one chip, or over chips their mean ±
   * sd, min and max with the chips as a strip), and beside a score on chips the model's
   * nominal figure (nominalOf). Every figure is a stored record's, as in the table
   * tests/study/study.sh prints.
   */
  async function viewStudy(root, _m, query) {
    const prefix = query.get('prefix') || 'study ';
    root.append(el('h1', { text: 'Study' }));
    const [list, models] = await Promise.all([apiList('/v1/jobs?type=evaluate', 'jobs'), apiList('/v1/models', 'models')]);
    const named = list.filter((j) => (j.name || '').startsWith(prefix)).sort((a, b) => a.id - b.id);
    const evals = (await Promise.all(named.map((j) => api('/v1/jobs/' + j.id))));
    const trains = new Map();
    for (const m of models) if (m.job && evals.some((e) => evalModelId(e, models) === m.id)) trains.set(m.id, await api('/v1/jobs/' + m.job).catch(() => null));
    root.append(el('p', { class: 'muted' }, `The evaluate jobs named "${prefix}…", ${evals.length} of them. `,
      'Another study: ', el('code', { text: '#/study?prefix=NAME' }), '. ',
      el('code', { text: 'make study' }), ' stores its runs in build/study/study.db: ', el('code', { text: 'qn serve --db build/study/study.db' }), ' shows them here.'));
    const head = ['job', 'evaluation', 'model', 'as trained', 'computed', 'rows', 'score', 'min', 'max', 'chips', 'nominal'];
    const body = evals.map((e) => studyRow(e, evals, models, trains));
    if (!evals.length) body.push(el('tr', {}, el('td', { colspan: head.length, class: 'muted', text: 'No evaluate jobs with that name yet.' })));
    const table = el('table', { class: 'scores', id: 'study' },
      el('thead', {}, el('tr', {}, head.map((t, i) => el('th', { scope: 'col', class: i >= 5 && i <= 8 ? 'num' : null, text: t })))),
      el('tbody', {}, body));
    root.append(el('div', { class: 'table-wrap' }, table), el('p', { class: 'row' }, tableCsvButton(table, 'study')),
      el('p', { class: 'legend-note', text: 'score: accuracy, or over chips their mean ± sample sd (percentage points); nominal: the same model computed the same way on the same rows with no chip and no noise.' }));
  }

  /* One row of the study table (viewStudy) for evaluation e. */
  function studyRow(e, evals, models, trains) {
    const r = e.result || {}, mid = evalModelId(e, models), m = models.find((x) => x.id === mid);
    const t = trains.get(mid), ok = e.state === 'succeeded';
    const chips = Array.isArray(r.chips) ? r.chips : null;
    const nom = chips ? nominalOf(e, evals) : null;
    const score = !ok ? e.state : chips ? `${pct(r.accuracy_mean)} ± ${(100 * r.accuracy_sd).toFixed(2)}` : pct(r.accuracy) + (e.spec.chip !== undefined ? ` (chip ${e.spec.chip})` : '');
    const strip = chips ? el('span', { class: 'strip', 'aria-label': 'each chip\'s accuracy' }, chips.map((c) => el('span', {
      class: 'tick', title: `chip ${c.chip}: ${pct(c.accuracy)}`,
      style: `left: ${Math.round(100 * (c.accuracy - r.accuracy_min) / ((r.accuracy_max - r.accuracy_min) || 1))}%` }))) : null;
    return el('tr', { 'data-job': e.id, 'data-chips': chips ? chips.length : 0 },
      el('td', {}, refLink('jobs', e.id)), el('td', { class: 'name', text: e.name }),
      el('td', {}, m ? refLink('models', m.id, m.name || '#' + m.id) : '–'),
      el('td', { class: 'num', 'data-value': t && t.result ? String(t.result.test_accuracy) : null, text: t && t.result ? pct(t.result.test_accuracy) : '–' }),
      el('td', { class: 'name', text: m ? viaText(m, e) : '–' }), el('td', { class: 'num', text: ok ? r.rows : '–' }),
      el('td', { class: 'num', 'data-value': ok ? String(chips ? r.accuracy_mean : r.accuracy) : null, text: score }),
      el('td', { class: 'num', text: chips ? pct(r.accuracy_min) : '–' }), el('td', { class: 'num', text: chips ? pct(r.accuracy_max) : '–' }),
      el('td', {}, chips ? [`${chips.length} `, strip] : '–'),
      el('td', { 'data-value': nom ? String(nom.result.accuracy) : null }, nom ? [pct(nom.result.accuracy), ' (', refLink('jobs', nom.id), ')'] : '–'));
  }

  /* The evaluate page's side-by-side card: this score, the score as trained, the difference. */
  async function evaluateSideBySide(parent, job) {
    const models = await apiList('/v1/models', 'models');
    const mid = evalModelId(job, models);
    const m = models.find((x) => x.id === mid);
    if (!m) return;
    const rows = await scoresOf(m, await apiList('/v1/jobs', 'jobs'), models);
    const me = rows.find((r) => r.job.id === job.id);
    const card = el('section', { class: 'card', id: 'side-by-side', 'aria-label': 'Side by side' },
      el('h2', {}, 'This score beside model ', refLink('models', m.id), '\'s others'));
    if (me && me.ref && me.job.state === 'succeeded') {
      const f = (r) => (typeof r.acc === 'number' ? 'accuracy ' + pct(r.acc) : 'loss ' + fmtNum(r.loss));
      const d = typeof me.acc === 'number' && typeof me.ref.acc === 'number' ? signed(me.acc - me.ref.acc, (v) => (100 * v).toFixed(1) + ' pp')
        : signed(me.loss - me.ref.loss, fmtNum);
      card.append(el('div', { class: 'side' },
        el('div', { class: 'side-cell' }, el('div', { class: 'muted', text: me.via }), el('div', { class: 'big', text: f(me) })),
        el('div', { class: 'side-cell' }, el('div', { class: 'muted', text: me.ref.via }), el('div', { class: 'big', text: f(me.ref) })),
        el('div', { class: 'side-cell' }, el('div', { class: 'muted', text: 'difference' + (me.sameRows ? '' : ' (other rows)') }),
          el('div', { class: 'big', id: 'side-diff', text: d }))));
    }
    card.append(scoresTable(rows, job.id));
    parent.prepend(card);
  }

  // ---- start ---------------------------------------------------------------------

  /* Whether the daemon wants a token (GET /healthz says), and who we are
   * (GET /v1/whoami), so the page never has to provoke a 401 to find out. */
  async function start() {
    try {
      const health = await (await fetch('/healthz')).json();
      auth.needed = health.auth === 'token';
      if (auth.needed && !auth.token) { signinNeeded(''); return; }
      const res = await fetch('/v1/whoami', { headers: headers() });
      if (res.status === 401) { signinNeeded('The daemon refused the stored token (401). Sign in again.'); return; }
      auth.who = await res.json();
    } catch (e) {
      banner('Cannot reach the daemon: ' + e.message);
    }
    renderWho();
    route();
  }

  window.addEventListener('hashchange', () => { if (!signinShown) route(); });
  window.__qn = { version: 1 }; // a marker the browser test waits for
  start();
})();
