// test_page.mjs: the monitoring page in headless Chromium against a live daemon.
//
// Starts `qn serve` (QN_BIN, default build/qn) on a free loopback port with a
// temporary database, from a temporary working directory (the page is
// embedded in the binary, so it must not matter where qn runs); registers a
// crn_relu device and submits a training job that runs the real ODE in the
// loop for several seconds; then drives Debian's chromium
// (CHROMIUM, default /usr/bin/chromium) with playwright-core and checks:
//   - the run's loss chart has points and gains more while the job runs;
//   - the runs table shows the job's state change to `succeeded`;
//   - the device page draws a response curve and a trajectory;
//   - every chart shown has points and both axes labelled with units; the fit
//     page opens in log scale with short numeric ticks;
//   - a failed run shows its error in the runs table and on its page, with no
//     empty charts; a sweep with failed rows draws every point, marks the
//     failures and shows its status counts; Hodgkin–Huxley's gates get their
//     own axis;
//   - references are links that resolve (a train spec's {"job": N}, its
//     surrogate, device and model; a model's job; a surrogate's dataset);
//   - a model trained via surrogate and evaluated via device and as trained:
//     the evaluate page shows both side by side with the difference, the
//     Models view lists the model and its scores;
//   - smoothing keeps the raw curves, faint; charts download as CSV (values
//     exact) and PNG, the runs table as CSV; at 390 px the runs table shows
//     state, progress and headline; a device's drive range is its sweep's;
//   - a model scored on chips: one point per chip, with the nominal figure
//     beside them; the study view tabulates the evaluations its prefix names
//     (scores, chips, nominal figures) from the stored records;
//   - compare: several metrics against wall time, legends with values, the
//     hyperparameters and final figures, the spec diff, evaluate runs too;
//   - no console errors or uncaught exceptions;
//   - with a user added, the page asks for a token, says so clearly on a
//     wrong one (401) and signs in with the right one.
// Screenshots at 1280 and 800 px go to ARTIFACTS (default build/test-artifacts).
// Ends with the line "web: N passed, N failed"; exit status 1 on a failure.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDaemon, tally } from '../support/qn_serve.mjs';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const QN = resolve(process.env.QN_BIN || join(root, 'build', 'qn'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ART = resolve(process.env.ARTIFACTS || join(root, 'build', 'test-artifacts'));
const EPOCHS = Number(process.env.QN_WEB_EPOCHS || 300);

const T = tally();
const check = T.check;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function http(base, path, opts = {}) {
  const res = await fetch(base + path, {
    method: opts.method || 'GET',
    headers: Object.assign({ 'Content-Type': 'application/json' }, opts.headers || {}),
    body: opts.body ? JSON.stringify(opts.body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch (e) { /* not JSON */ }
  return { status: res.status, headers: res.headers, text, json };
}

const TRAIN = {
  type: 'train', name: 'web test: crn spirals',
  spec: {
    dataset: 'spirals',
    network: [{ devices: 8, device: 'crn', via: 'device' },
      { devices: 2, device: { kind: 'neuron', params: { activation: 'identity' } }, via: 'exact' }],
    loss: 'cross_entropy', optimizer: { name: 'adam', lr: 0.01 },
    epochs: EPOCHS, batch: 32, seed: 1, checkpoint_every: 50,
  },
};

/* The number in the data-points attribute of chart `key` (0 when absent). */
async function chartPoints(page, key) {
  return page.evaluate((k) => {
    const e = document.querySelector(`[data-chart="${k}"]`);
    return e ? Number(e.getAttribute('data-points')) : 0;
  }, key);
}

/* The visible charts of the page: key, axis labels, points, tick texts, log scale. */
async function chartsShown(page) {
  return page.evaluate(() => Array.from(document.querySelectorAll('[data-chart]'))
    .filter((e) => !e.closest('[hidden]'))
    .map((e) => ({ key: e.dataset.chart, x: e.dataset.xLabel || '', y: e.dataset.yLabel || '', y2: e.dataset.y2Label || '',
      points: Number(e.dataset.points), failed: Number(e.dataset.failed || 0), ticks: e.dataset.yTicks || '', log: e.dataset.log })));
}

/* Every visible chart of the view has points and both axes labelled with a unit "(...)". */
async function checkAxes(page, view) {
  const cs = await chartsShown(page);
  const bad = cs.filter((c) => !(c.points > 0 && /\(.+\)/.test(c.x) || c.x === 'epoch' || c.x === 'optimizer step')
    || !/\(.+\)/.test(c.y) || !(c.points > 0));
  check(cs.length > 0 && bad.length === 0, `${view}: every chart has points and labelled axes with units`,
    JSON.stringify(bad.length ? bad : cs));
  return cs;
}

/* Every in-page link under selector opens a view that loads (no error, not "Not found"). */
async function checkLinks(page, url, where, selector, mustHave) {
  await page.goto(url);
  await page.waitForSelector(selector);
  await sleep(300); // the views fill in after their fetches
  const within = selector.split(',').map((x) => `${x.trim()} a[href^="#/"]`).join(', ');
  const hrefs = Array.from(new Set(await page.$$eval(within, (as) => as.map((a) => a.getAttribute('href')))));
  const missing = mustHave.filter((h) => !hrefs.includes(h));
  check(missing.length === 0, `${where}: references are links`, `missing ${missing.join(', ')} in ${hrefs.join(', ')}`);
  const broken = [];
  for (const h of hrefs) {
    await page.goto(url.replace(/#.*$/, '') + h);
    await page.waitForSelector('#view h1');
    await sleep(250);
    const bad = await page.evaluate(() => document.querySelector('#view h1').textContent === 'Not found' ||
      Array.from(document.querySelectorAll('#view .error[role="alert"]')).some((e) => /Could not load/.test(e.textContent)));
    if (bad) broken.push(h);
  }
  check(hrefs.length > 0 && broken.length === 0, `${where}: every link resolves (${hrefs.length})`, broken.join(', '));
}

/* Clicks the button `selector` and returns the downloaded file's name and bytes. */
async function downloaded(page, selector) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  const path = await dl.path();
  return { name: dl.suggestedFilename(), bytes: readFileSync(path) };
}

async function waitJob(base, id) {
  let j = null;
  for (let i = 0; i < 400 && !(j && ['succeeded', 'failed', 'canceled'].includes(j.state)); i++) {
    await sleep(100);
    j = (await http(base, `/v1/jobs/${id}`)).json;
  }
  return j;
}

async function shot(page, name, width) {
  await page.setViewportSize({ width, height: 900 });
  await sleep(400); // charts follow the window's resize event
  await page.screenshot({ path: join(ART, `${name}-${width}.png`), fullPage: true });
}

async function main() {
  mkdirSync(ART, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'qn-web-'));
  const { proc, base } = await startDaemon(QN, dir, 'web.db');
  let browser = null;
  try {
    // The static routes.
    const index = await http(base, '/');
    check(index.status === 200 && /text\/html/.test(index.headers.get('content-type')) && index.text.includes('/assets/app.js'),
      'GET / serves the page from any working directory', `${index.status}`);
    check(/script-src 'self'/.test(index.headers.get('content-security-policy') || ''), 'the page has a CSP');
    const asset = await http(base, '/assets/uPlot.iife.min.js');
    check(asset.status === 200 && asset.text.includes('uPlot'), 'GET /assets/uPlot.iife.min.js');
    check((await http(base, '/assets/nope.js')).status === 404, 'an unknown asset is a 404');

    // A device and a training job that runs the ODE in the loop.
    const dev = await http(base, '/v1/devices', { method: 'POST', body: { name: 'crn', kind: 'crn_relu', drive: 'dot', params: { kappa: 0.01 } } });
    check(dev.status === 201, 'device registered', dev.text);
    const sub = await http(base, '/v1/jobs', { method: 'POST', body: TRAIN });
    check(sub.status === 201, 'training job submitted', sub.text);
    const jobId = sub.json.id;
    const t0 = Date.now();

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    const errors = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push('console: ' + m.text()); });
    page.on('pageerror', (e) => errors.push('exception: ' + e.message));

    // The run view: points arrive, then more while the job runs.
    await page.goto(`${base}/#/jobs/${jobId}`);
    await page.waitForFunction(() => window.__qn && document.querySelector('[data-chart="loss"]'));
    await page.waitForFunction(() => Number(document.querySelector('[data-chart="loss"]').getAttribute('data-points')) > 0,
      null, { timeout: 30000 });
    const stateAt1 = (await http(base, `/v1/jobs/${jobId}`)).json.state;
    const n1 = await chartPoints(page, 'loss');
    check(n1 > 0 && (await page.locator('[data-chart="loss"] canvas').count()) === 1, 'the run chart has points', `${n1}`);
    let n2 = n1;
    for (let i = 0; i < 40 && n2 <= n1; i++) { await sleep(250); n2 = await chartPoints(page, 'loss'); }
    check(stateAt1 === 'running' && n2 > n1, 'the run chart gains points while the job runs (over SSE)',
      `state ${stateAt1} at the first count, points ${n1} -> ${n2}; raise QN_WEB_EPOCHS if the job ends too soon`);
    check(await chartPoints(page, 'step_loss') > 0, 'the step-loss chart has points');
    const runCharts = await checkAxes(page, 'the train run');
    check(/cross-entropy/.test(runCharts.find((c) => c.key === 'loss').y) && /fraction/.test(runCharts.find((c) => c.key === 'accuracy').y),
      'the train run says which loss and that accuracy is a fraction', JSON.stringify(runCharts));
    await shot(page, 'run', 1280);
    await shot(page, 'run', 800);
    await page.setViewportSize({ width: 1280, height: 900 });

    // The runs table follows the job to `succeeded`.
    await page.goto(`${base}/#/`);
    await page.waitForSelector(`#runs tr[data-job="${jobId}"]`);
    const before = await page.getAttribute(`#runs tr[data-job="${jobId}"]`, 'data-state');
    await page.waitForSelector(`#runs tr[data-job="${jobId}"][data-state="succeeded"]`, { timeout: 180000 });
    check(before !== 'succeeded', `the runs table shows job ${jobId} change from ${before} to succeeded`,
      'it had already succeeded when the table first showed it');
    console.log(`     (the job ran ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    // Keyboard: the row's link is reachable and opens the run.
    await page.focus(`#runs tr[data-job="${jobId}"] a`);
    await page.keyboard.press('Enter');
    await page.waitForFunction((id) => location.hash === `#/jobs/${id}`, jobId);
    check(true, 'a run opens from the table with the keyboard');
    await page.waitForSelector('h1[data-state="succeeded"]');
    await page.waitForFunction((n) => Number(document.querySelector('[data-chart="loss"]').getAttribute('data-points')) >= n,
      2 * EPOCHS, { timeout: 15000 }).catch(() => {});
    const finalPts = await chartPoints(page, 'loss');
    check(finalPts === 2 * EPOCHS, 'a finished run shows every epoch of train and test loss', `${finalPts} points`);
    // Smoothed, the raw curves stay drawn behind the smoothed ones.
    await page.$eval('#smoothing', (r) => { r.value = '0.9'; r.dispatchEvent(new Event('input')); });
    await page.waitForSelector('[data-chart="loss"][data-raw="1"]');
    check(await page.getAttribute('[data-chart="loss"]', 'data-series') === '4', 'smoothing draws the raw curves behind the smoothed ones',
      await page.getAttribute('[data-chart="loss"]', 'data-series'));
    await shot(page, 'smoothed', 1280);
    await page.setViewportSize({ width: 1280, height: 900 });
    // The chart downloads as CSV (raw values, shortest round-trip text) and as PNG.
    const csv = await downloaded(page, '[aria-label="Loss per epoch"] button[data-download="csv"]');
    const lines = csv.bytes.toString('utf8').trim().split('\n');
    const apiTrain = (await http(base, `/v1/jobs/${jobId}/metrics?name=train_loss&max_points=100000`)).json.metrics;
    const first = lines[1] ? lines[1].split(',') : [];
    check(csv.name.endsWith('.csv') && lines[0] === 'epoch,train_loss,test_loss' && lines.length === EPOCHS + 1 &&
      Number(first[0]) === apiTrain[0].epoch && Number(first[1]) === apiTrain[0].value,
    'the loss chart downloads as CSV, every epoch, the values exact', `${csv.name}: ${lines.slice(0, 2).join(' / ')} (${lines.length} lines) vs ${JSON.stringify(apiTrain[0])}`);
    const png = await downloaded(page, '[aria-label="Loss per epoch"] button[data-download="png"]');
    check(png.name.endsWith('.png') && png.bytes.length > 2000 && png.bytes.subarray(1, 4).toString() === 'PNG',
      'the loss chart downloads as PNG', `${png.name}, ${png.bytes.length} bytes`);
    await page.goto(`${base}/#/`);
    await page.waitForSelector(`#runs tr[data-job="${jobId}"][data-state="succeeded"]`);
    await shot(page, 'runs', 1280);
    await shot(page, 'runs', 800);
    const runsCsv = (await downloaded(page, 'button[aria-label="Download runs as CSV"]')).bytes.toString('utf8').split('\n');
    check(/^,id,name,type,owner,state,progress,started,duration,headline$/.test(runsCsv[0]) &&
      runsCsv.some((l) => l.startsWith(`,${jobId},web test: crn spirals,train,`) && /succeeded/.test(l)),
    'the runs table downloads as CSV', runsCsv.slice(0, 2).join(' / '));
    // A phone: state, progress and headline stay on screen.
    await page.setViewportSize({ width: 390, height: 800 });
    await sleep(300);
    const vis = await page.evaluate((id) => {
      const tr = document.querySelector(`#runs tr[data-job="${id}"]`);
      return ['.state-cell', '.progress-cell', 'td.headline'].map((q) => { const r = tr.querySelector(q).getBoundingClientRect(); return [q, r.left, r.right, r.width]; });
    }, jobId);
    check(vis.every(([, l, r, w]) => w > 0 && l >= 0 && r <= 390), 'at phone width the runs table shows state, progress and headline',
      JSON.stringify(vis));
    await page.screenshot({ path: join(ART, 'runs-390.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });

    // The device page draws its response curve and a trajectory.
    await page.goto(`${base}/#/devices/${dev.json.id}`);
    await page.waitForFunction(() => Number(document.querySelector('[data-chart="response"]')?.getAttribute('data-points')) >= 101,
      null, { timeout: 30000 });
    check(true, 'the device page draws a response curve (101 points)');
    await page.waitForFunction(() => Number(document.querySelector('[data-chart="trajectory"]')?.getAttribute('data-points')) > 1,
      null, { timeout: 30000 });
    check(true, 'the device page draws a trajectory');
    await checkAxes(page, 'the device page');
    await shot(page, 'device', 1280);
    await shot(page, 'device', 800);

    // Compare, datasets and surrogates views open without errors.
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${base}/#/compare?ids=${jobId}&metric=test_loss`);
    await page.waitForFunction(() => Number(document.querySelector('[data-chart="compare-test_loss"]')?.getAttribute('data-points')) > 0);
    check(true, 'the compare view overlays a metric');
    await checkAxes(page, 'the compare view');
    // A sweep and a surrogate fit: the dataset's points, the surrogate against them.
    const sw = await http(base, '/v1/jobs', { method: 'POST', body: { type: 'sweep', name: 'web test sweep',
      spec: { device: 'crn', design: 'sobol', samples: 300, seed: 1, ranges: { u1: [-4, 4] } } } });
    const fit = await http(base, '/v1/jobs', { method: 'POST', body: { type: 'fit', name: 'web test surrogate',
      spec: { dataset: { job: sw.json.id }, hidden: [16, 16], epochs: 60, batch: 64, seed: 1 } } });
    let fj = null;
    for (let i = 0; i < 120 && !(fj && ['succeeded', 'failed', 'canceled'].includes(fj.state)); i++) {
      await sleep(250);
      fj = (await http(base, `/v1/jobs/${fit.json.id}`)).json;
    }
    if (check(fj && fj.state === 'succeeded', 'sweep and fit succeeded', JSON.stringify(fj))) {
      await page.goto(`${base}/#/datasets/${(await http(base, `/v1/jobs/${sw.json.id}`)).json.result.dataset}`);
      await page.waitForFunction(() => Number(document.querySelector('[data-chart="samples"]')?.getAttribute('data-points')) === 300);
      check(true, 'the sweep dataset view draws its 300 points');
      await checkAxes(page, 'the dataset view');
      await page.goto(`${base}/#/surrogates/${fj.result.surrogate}`);
      await page.waitForFunction(() => Number(document.querySelector('[data-chart="residuals"]')?.getAttribute('data-points')) === 300);
      const note = await page.textContent('[data-chart="residuals"] + .legend-note');
      const maxe = Number((note.match(/max \|error\| ([0-9.e-]+)/) || [])[1]);
      check(Math.abs(maxe - fj.result.max_error) <= 1e-3 * Math.max(1, fj.result.max_error) || maxe <= fj.result.max_error * 1.5,
        'the surrogate view draws residuals that agree with the fit', `${note} vs max_error ${fj.result.max_error}`);
      const facts = await page.textContent('dl.facts');
      const dom = (facts.match(/domain\[(-?[0-9.e-]+), (-?[0-9.e-]+)\]/) || []).slice(1).map(Number);
      check(dom.length === 2 && dom[0] < dom[1] && dom[0] >= -4.001 && dom[1] <= 4.001 && dom[1] - dom[0] > 7,
        'the surrogate view shows its domain (the sweep box)', facts);
      const c1note = await page.textContent('[data-chart="surrogate"] + .legend-note');
      check(/domain's edges/.test(c1note), 'the surrogate plot marks the domain edges', c1note);
      await checkAxes(page, 'the surrogate view');
      // The fit's page opens in log scale with ticks that read as numbers.
      await page.goto(`${base}/#/jobs/${fit.json.id}`);
      await page.waitForFunction(() => Number(document.querySelector('[data-chart="val_rmse"]')?.getAttribute('data-points')) > 0);
      const fitCharts = await checkAxes(page, 'the fit run');
      const vr = fitCharts.find((c) => c.key === 'val_rmse');
      const ticks = vr.ticks.split('|').filter((t) => t.length);
      check(await page.$eval('#logscale', (b) => b.checked) && vr.log === '1', 'the fit page opens in log scale', JSON.stringify(vr));
      check(ticks.length >= 2 && ticks.every((t) => /^-?\d+(\.\d+)?(e-?\d+)?$/.test(t) && Number(t) > 0 && t.length <= 7),
        'the log-scale ticks are short, positive numbers', vr.ticks);
      await shot(page, 'fit', 1280);
      await page.setViewportSize({ width: 1280, height: 900 });

      // A model trained through the surrogate, scored via the device and as trained.
      const tr = await http(base, '/v1/jobs', { method: 'POST', body: { type: 'train', name: 'web test: via surrogate', spec: {
        dataset: 'spirals', loss: 'cross_entropy', epochs: 5, batch: 32, seed: 1, optimizer: { name: 'adam', lr: 0.01 },
        network: [{ devices: 8, device: 'crn', via: 'surrogate', surrogate: { job: fit.json.id } },
          { devices: 2, device: { kind: 'neuron', params: { activation: 'identity' } }, via: 'exact' }] } } });
      const tj = await waitJob(base, tr.json.id);
      const evDev = await http(base, '/v1/jobs', { method: 'POST', body: { type: 'evaluate', name: 'web test: via device',
        spec: { model: { job: tj.id }, dataset: 'spirals', via: { 0: 'device' } } } });
      const evSur = await http(base, '/v1/jobs', { method: 'POST', body: { type: 'evaluate', name: 'web test: as trained',
        spec: { model: { job: tj.id }, dataset: 'spirals' } } });
      const ed = await waitJob(base, evDev.json.id), es = await waitJob(base, evSur.json.id);
      if (check(tj.state === 'succeeded' && ed.state === 'succeeded' && es.state === 'succeeded' && ed.result.solves > 0,
        'train via surrogate, evaluate via device and as trained', JSON.stringify([tj.state, ed.result, es.result]))) {
        const modelId = tj.result.model;
        await page.goto(`${base}/#/jobs/${ed.id}`);
        await page.waitForSelector('#side-diff');
        const diff = await page.textContent('#side-diff');
        const want = ed.result.accuracy - es.result.accuracy;
        const row = await page.$eval(`#side-by-side tr[data-job="${ed.id}"]`, (tr) => ({ d: Number(tr.dataset.dAccuracy),
          against: tr.lastChild.textContent }));
        check(Math.abs(row.d - want) < 1e-12 && row.against === `#${es.id}` &&
          diff.replace('−', '-').replace('±', '').replace(' pp', '') === (want === 0 ? '0.0' : (want > 0 ? '+' : '-') + (100 * Math.abs(want)).toFixed(1)),
        'the evaluate page shows via device beside as trained, with the difference', `${diff}; ${JSON.stringify(row)}; want ${want}`);
        await shot(page, 'evaluate', 1280);
        await page.setViewportSize({ width: 1280, height: 900 });
        await page.goto(`${base}/#/models`);
        await page.waitForSelector(`a[href="#/models/${modelId}"]`);
        await page.goto(`${base}/#/models/${modelId}`);
        await page.waitForSelector('table.scores');
        const kinds = await page.$$eval('table.scores tbody tr', (trs) => trs.map((t) => `${t.dataset.kind}:${t.dataset.job}`));
        check(JSON.stringify(kinds) === JSON.stringify([`trained:${tj.id}`, `evaluate:${ed.id}`, `evaluate:${es.id}`]),
          'the model page lists its training run and its evaluations', JSON.stringify(kinds));
        await shot(page, 'model', 1280);
        await page.setViewportSize({ width: 1280, height: 900 });
        // A device population: a model scored on 5 chips shows one point per chip and their spread.
        await http(base, '/v1/devices', { method: 'POST', body: { name: 'crn-chip', kind: 'crn_relu',
          params: { kappa: 0.01 }, variability: { kappa: { dist: 'lognormal', cv: 0.3 } } } });
        const ct = await waitJob(base, (await http(base, '/v1/jobs', { method: 'POST', body: { type: 'train',
          name: 'web test: chip model', spec: { dataset: { name: 'spirals', samples: 200 }, epochs: 2, batch: 32, seed: 1,
            network: [{ devices: 4, device: 'crn-chip', via: 'device' },
              { devices: 2, device: { kind: 'neuron', params: { activation: 'identity' } }, via: 'exact' }] } } })).json.id);
        const ce = await waitJob(base, (await http(base, '/v1/jobs', { method: 'POST', body: { type: 'evaluate',
          name: 'web test: on chips', spec: { model: { job: ct.id }, dataset: { name: 'spirals', samples: 200 },
            chips: { count: 5, seed: 1 } } } })).json.id);
        if (check(ce.state === 'succeeded' && ce.result.chips.length === 5, 'a model scored on 5 chips', JSON.stringify(ce))) {
          await page.goto(`${base}/#/jobs/${ce.id}`);
          await page.waitForFunction(() => Number(document.querySelector('[data-chart="chips"]')?.getAttribute('data-points')) === 5);
          const note = await page.textContent('[data-chart="chips"] + .legend-note');
          check(/mean [0-9.]+ %/.test(note) && /min [0-9.]+ %/.test(note) && /max [0-9.]+ %/.test(note),
            'the evaluate page draws one point per chip, with mean, spread and range', note);
          await checkAxes(page, 'chips');
          // Its nominal figure beside it, and the study view: evaluations named "study web: ..." as one table.
          const post = async (name, extra) => waitJob(base, (await http(base, '/v1/jobs', { method: 'POST', body: { type: 'evaluate',
            name, spec: Object.assign({ model: { job: ct.id }, dataset: { name: 'spirals', samples: 200 } }, extra) } })).json.id);
          const nominal = await post('study web: nominal', {});
          const three = await post('study web: on 3 chips', { chips: { count: 3, seed: 2 } });
          await post('not in the study', { chip: 4 });
          await page.goto(`${base}/#/jobs/${three.id}`);
          await page.waitForSelector('[data-chart="chips"] + .legend-note [data-nominal]');
          const nomText = await page.getAttribute('[data-chart="chips"] + .legend-note [data-nominal]', 'data-nominal');
          check(nominal.state === 'succeeded' && Number(nomText) === nominal.result.accuracy,
            'a score on chips shows the nominal figure beside it', `${nomText} vs ${JSON.stringify(nominal.result)}`);
          await page.goto(`${base}/#/study?prefix=study web:`);
          await page.waitForSelector('#study tbody tr[data-job]');
          const study = await page.$$eval('#study tbody tr[data-job]', (trs) => trs.map((t) => ({ job: Number(t.dataset.job),
            chips: Number(t.dataset.chips), vals: Array.from(t.querySelectorAll('td[data-value]')).map((d) => Number(d.dataset.value)),
            ticks: t.querySelectorAll('.strip .tick').length })));
          const want = [{ job: nominal.id, chips: 0, vals: [ct.result.test_accuracy, nominal.result.accuracy], ticks: 0 },
            { job: three.id, chips: 3, vals: [ct.result.test_accuracy, three.result.accuracy_mean, nominal.result.accuracy], ticks: 3 }];
          check(JSON.stringify(study) === JSON.stringify(want), 'the study view tabulates the evaluations named by its prefix, chips beside the nominal figure',
            `${JSON.stringify(study)} want ${JSON.stringify(want)}`);
          await shot(page, 'study', 1280);
          await page.setViewportSize({ width: 1280, height: 900 });
          await checkLinks(page, `${base}/#/study?prefix=study web:`, 'the study view', '#study',
            [`#/jobs/${three.id}`, `#/jobs/${nominal.id}`, `#/models/${ct.result.model}`]);
        }
        // Compare: two metrics against wall time, legends with values, hyperparameters, the spec diff.
        await page.goto(`${base}/#/compare?ids=${jobId},${tj.id}&metrics=train_loss,test_accuracy&x=time`);
        await page.waitForSelector('#cmp-diff');
        const cc = await chartsShown(page);
        check(cc.length === 2 && cc.every((c) => c.points > 0 && /wall time/.test(c.x)) &&
          /cross-entropy/.test(cc.find((c) => c.key === 'compare-train_loss').y),
        'compare draws each chosen metric against wall time', JSON.stringify(cc));
        const legend = await page.$$eval('[data-chart="compare-train_loss"] .u-legend .u-series .u-value', (vs) => vs.map((v) => v.textContent));
        check(legend.length === 3 && legend.every((t) => /^-?[0-9.e+-]+$/.test(t)), 'compare legends show values without hovering', JSON.stringify(legend));
        const rows = await page.$$eval('#cmp-params tbody tr[data-path]', (trs) => Object.fromEntries(trs.map((t) => [t.dataset.path, t.dataset.differs])));
        const diffPaths = await page.$$eval('#cmp-diff tbody tr[data-path]', (trs) => trs.map((t) => t.dataset.path));
        check(rows.epochs === '1' && rows.seed === '0' && rows.test_accuracy === '1' && rows['network/0/via'] === '1' &&
          diffPaths.includes('epochs') && diffPaths.includes('network/0/via') && !diffPaths.includes('seed'),
        'compare tabulates hyperparameters and final figures and diffs the specs', `${JSON.stringify(rows)} diff ${diffPaths}`);
        await shot(page, 'compare', 1280);
        await page.setViewportSize({ width: 1280, height: 900 });
        await page.goto(`${base}/#/compare?ids=${ed.id},${es.id}`);
        await page.waitForSelector('#cmp-diff');
        const erows = await page.$$eval('#cmp-params tbody tr[data-path]', (trs) => trs.map((t) => t.dataset.path));
        const ediff = await page.$$eval('#cmp-diff tbody tr[data-path]', (trs) => trs.map((t) => t.dataset.path));
        check(erows.includes('accuracy') && erows.includes('solves') && ediff.includes('via/0'),
          'evaluate runs compare: final figures and how the layers were computed', `${erows} diff ${ediff}`);
        await checkLinks(page, `${base}/#/jobs/${tj.id}`, 'the train run', '#spec, #result', [`#/jobs/${fit.json.id}`, `#/models/${modelId}`,
          `#/devices/crn`, `#/surrogates/${fj.result.surrogate}`]);
        await checkLinks(page, `${base}/#/models/${modelId}`, 'the model page', 'dl.facts', [`#/jobs/${tj.id}`]);
        await checkLinks(page, `${base}/#/surrogates/${fj.result.surrogate}`, 'the surrogate page', 'dl.facts',
          [`#/jobs/${fit.json.id}`, `#/datasets/${fj.result.dataset || (await http(base, `/v1/surrogates/${fj.result.surrogate}`)).json.dataset}`, '#/devices/crn']);
      }
      await shot(page, 'surrogate', 1280);
      await page.setViewportSize({ width: 1280, height: 900 });
    }
    // A failed run says why, in the table and on its page, and draws no empty chart.
    const bad = await http(base, '/v1/jobs', { method: 'POST', body: { type: 'train', name: 'web test: fails',
      spec: { dataset: 'sine', loss: 'mse', epochs: 3,
        network: [{ devices: 3, device: { kind: 'neuron', params: { activation: 'identity' } }, via: 'exact' }] } } });
    let bj = null;
    for (let i = 0; i < 80 && !(bj && bj.state === 'failed'); i++) { await sleep(100); bj = (await http(base, `/v1/jobs/${bad.json.id}`)).json; }
    if (check(bj && bj.state === 'failed' && bj.error, 'a train with a mismatched last layer fails', JSON.stringify(bj))) {
      await page.goto(`${base}/#/`);
      await page.waitForSelector(`#runs tr[data-job="${bj.id}"] td.headline.error`);
      const cell = await page.textContent(`#runs tr[data-job="${bj.id}"] td.headline`);
      check(cell.includes(bj.error), 'the runs table shows why a run failed', cell);
      await page.goto(`${base}/#/jobs/${bj.id}`);
      await page.waitForSelector('#charts-note:not([hidden])');
      const err = await page.textContent('.run-error');
      check(err.includes(bj.error) && (await chartsShown(page)).length === 0,
        'a failed run shows its error and no empty charts', `${err}; ${JSON.stringify(await chartsShown(page))}`);
      await shot(page, 'failed', 1280);
    }

    // A sweep with failed rows shows the response, the failures marked, and its status counts.
    const boom = await http(base, '/v1/devices', { method: 'POST', body: { name: 'boom', kind: 'ode', state: { y: 0 },
      rhs: { y: '-y + u1*y*y + u1' }, readout: { kind: 'steady_state', t_max: 20 } } });
    check(boom.status === 201, 'a device that blows up for u1 > 1/2 registered', boom.text);
    const sb = await http(base, '/v1/jobs', { method: 'POST', body: { type: 'sweep', name: 'web test: sweep with failures',
      spec: { device: 'boom', design: 'grid', samples: 41, seed: 1, ranges: { u1: [-1, 1] } } } });
    let sj = null;
    for (let i = 0; i < 100 && !(sj && ['succeeded', 'failed'].includes(sj.state)); i++) { await sleep(100); sj = (await http(base, `/v1/jobs/${sb.json.id}`)).json; }
    if (check(sj && sj.state === 'succeeded' && sj.result.failed > 0 && sj.result.failed < 41, 'the sweep succeeded with failed rows',
      JSON.stringify(sj && sj.result))) {
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.goto(`${base}/#/jobs/${sj.id}`);
      await page.waitForFunction(() => Number(document.querySelector('[data-chart="response"]')?.getAttribute('data-points')) > 0);
      const rc = (await checkAxes(page, 'the sweep run')).find((c) => c.key === 'response');
      check(rc.points === 41 && rc.failed === sj.result.failed, 'the sweep page draws every swept point and marks the failed rows',
        JSON.stringify(rc));
      const counts = await page.$$eval('#sweep-statuses tbody tr', (trs) => Object.fromEntries(trs.map((tr) =>
        [tr.dataset.status, Number(tr.children[1].textContent)])));
      check(JSON.stringify(counts) === JSON.stringify(Object.fromEntries(Object.entries(sj.result.statuses)
        .sort((a, b) => (a[0] === 'ok' ? -1 : b[0] === 'ok' ? 1 : b[1] - a[1])))), 'the sweep page shows the status counts',
      `${JSON.stringify(counts)} vs ${JSON.stringify(sj.result.statuses)}`);
      const link = await page.getAttribute('#sweep-statuses + p a', 'href');
      check(link === `#/datasets/${sj.result.dataset}`, 'the sweep page links its dataset', link);
      await shot(page, 'sweep', 1280);
      await page.setViewportSize({ width: 1280, height: 900 });
    }

    // Hodgkin–Huxley: the gates on their own axis, units of a neuron.
    const hh = await http(base, '/v1/devices', { method: 'POST', body: { name: 'hh', kind: 'hodgkin_huxley' } });
    const hsw = await http(base, '/v1/jobs', { method: 'POST', body: { type: 'sweep', name: 'web test: hh f-I',
      spec: { device: 'hh', design: 'grid', samples: 5, seed: 1, ranges: { u1: [0, 20] } } } });
    check((await waitJob(base, hsw.json.id)).state === 'succeeded', 'a Hodgkin–Huxley sweep over [0, 20] µA/cm²');
    await page.goto(`${base}/#/devices/${hh.json.id}`);
    await page.waitForFunction(() => Number(document.querySelector('[data-chart="trajectory"]')?.getAttribute('data-points')) > 1,
      null, { timeout: 60000 });
    const hc = await checkAxes(page, 'the Hodgkin–Huxley page');
    const ht = hc.find((c) => c.key === 'trajectory'), hr = hc.find((c) => c.key === 'response');
    check(/mV/.test(ht.y) && /gate/.test(ht.y2) && /ms/.test(ht.x) && /Hz/.test(hr.y) && /µA\/cm²/.test(hr.x),
      'the Hodgkin–Huxley page labels mV, ms, Hz, µA/cm² and puts the gates on their own axis', JSON.stringify(hc));
    const range = [await page.inputValue('#sim-from'), await page.inputValue('#sim-to')];
    check(range[0] === '0' && range[1] === '20' && await page.getAttribute('#sim-range-note a', 'href') === `#/jobs/${hsw.json.id}`,
      'the Hodgkin–Huxley drive range comes from its own sweep', JSON.stringify(range));
    await shot(page, 'hh', 1280);
    await page.setViewportSize({ width: 1280, height: 900 });

    for (const v of ['datasets', 'surrogates', 'devices']) {
      await page.goto(`${base}/#/${v}`);
      await page.waitForSelector('table');
    }
    check(errors.length === 0, 'no console errors', errors.join(' | '));

    // With a user, the page asks for a token.
    const tok = execFileSync(QN, ['user', 'add', 'alice', '--db', join(dir, 'web.db')], { encoding: 'utf8' });
    const token = (tok.match(/[A-Za-z0-9_-]{20,}/) || [''])[0];
    check(token.length > 0, 'qn user add printed a token', tok);
    const page2 = await ctx.newPage();
    const thrown = [];
    page2.on('pageerror', (e) => thrown.push(e.message));
    await page2.goto(`${base}/#/`);
    await page2.waitForSelector('form.signin');
    await page2.fill('#token', 'not-a-token');
    await page2.press('#token', 'Enter');
    await page2.waitForSelector('form.signin .error');
    const msg = await page2.textContent('form.signin .error');
    check(/401/.test(msg), 'a wrong token gets a clear 401 message', msg);
    await page2.fill('#token', token);
    await page2.press('#token', 'Enter');
    await page2.waitForSelector(`#runs tr[data-job="${jobId}"]`);
    check(true, 'the right token signs in and shows the runs');
    const who = await page2.textContent('#who');
    check(/signed in as alice/.test(who), 'the page says who is signed in', who);
    await page2.goto(`${base}/#/jobs/${jobId}`);
    await page2.waitForSelector('#cancel', { state: 'attached' });
    check(await page2.$eval('#cancel', (b) => b.hidden), 'no cancel button on a run of another owner');
    await page2.goto(`${base}/#/`);
    await page2.reload();
    await page2.waitForSelector(`#runs tr[data-job="${jobId}"]`);
    check(true, 'the token is kept across reloads');
    check(thrown.length === 0, 'no exceptions while signing in', thrown.join(' | '));
  } finally {
    if (browser) await browser.close();
    proc.kill('SIGTERM');
    await new Promise((r) => { proc.once('exit', r); setTimeout(r, 10000); });
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { check(false, 'the test ran to the end', e.stack || String(e)); }).finally(() => {
  console.log(`screenshots in ${ART}`);
  process.exitCode = T.close('web') ? 1 : 0;
});
