// qn_serve.mjs: what the node tests (tests/web, tests/openapi) share: a
// tally of checks that prints one line each and the closing line, and a
// real `qn serve` started on an ephemeral loopback port.
import { spawn } from 'node:child_process';
import { join } from 'node:path';

/* A tally: check(ok, what, detail) prints "ok"/"FAIL" and counts;
 * close(label) prints "<label>: N passed, N failed" and returns the failures. */
export function tally() {
  const t = { passed: 0, failed: 0 };
  t.check = (ok, what, detail) => {
    if (ok) { t.passed++; console.log(`ok   ${what}`); }
    else { t.failed++; console.log(`FAIL ${what}${detail ? ': ' + detail : ''}`); }
    return ok;
  };
  t.close = (label) => { console.log(`${label}: ${t.passed} passed, ${t.failed} failed`); return t.failed; };
  return t;
}

/* Starts `qn` (path) serve on database `db` in dir with 2 workers; resolves
 * to {proc, port, base} once it printed its port line, rejects when it exits
 * first or says nothing for 15 s. */
export function startDaemon(qn, dir, db) {
  return new Promise((res, rej) => {
    const proc = spawn(qn, ['serve', '--db', join(dir, db), '--port', '0', '--workers', '2'],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    const t = setTimeout(() => rej(new Error('qn serve did not start: ' + err)), 15000);
    proc.stderr.on('data', (d) => { err += d; });
    proc.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(t);
      try {
        const port = JSON.parse(out.slice(0, nl)).port;
        res({ proc, port, base: `http://127.0.0.1:${port}` });
      } catch (e) { rej(e); }
    });
    proc.on('exit', (code) => { clearTimeout(t); rej(new Error(`qn serve exited ${code}: ${err}`)); });
  });
}
