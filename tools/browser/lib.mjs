// Shared pieces of decomp's browser checks (docs site, dashboards): headless Debian Chromium driven by
// playwright-core, local servers on free 127.0.0.1 ports that are always stopped, and a page check that collects
// console errors, uncaught exceptions, failed local requests and broken images. Nothing here touches the network:
// every request to a host other than 127.0.0.1/localhost is aborted.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// The flags the machines here need: no sandbox (root), no GPU, and nothing that phones home (the network is closed).
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-quic', '--no-first-run', '--disable-sync', '--disable-dev-shm-usage'];

const cleanups = [];
let exiting = false;

/** Run `fn` (async allowed) when the process ends: normally, on an error, or on SIGINT/SIGTERM/SIGHUP. */
export function onCleanup(fn) { cleanups.push(fn); return fn; }

export async function runCleanups() {
  while (cleanups.length) {
    const fn = cleanups.pop();
    try { await fn(); } catch (e) { console.error(`cleanup: ${e.message}`); }
  }
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, async () => {
    if (exiting) return;
    exiting = true;
    console.error(`\n${sig}: stopping the servers and the browser`);
    await runCleanups();
    process.exit(130);
  });
}

/**
 * Run `main()` with a time limit, then always clean up; the exit code is what `main` returns (0 if nothing),
 * 1 on an exception, 124 on the time limit.
 */
export async function runMain(main, { limitMs = 600_000, name = 'check' } = {}) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`${name}: time limit of ${limitMs / 1000} s reached`), { code: 124 })), limitMs);
  });
  let code = 0;
  try {
    code = (await Promise.race([main(), limit])) ?? 0;
  } catch (e) {
    console.error(`${name}: ${process.env.DEBUG ? e.stack : e.message}`);
    code = e.code === 124 ? 124 : 1;
  } finally {
    clearTimeout(timer);
    exiting = true;
    await runCleanups();
  }
  process.exit(code);
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => { const { port } = srv.address(); srv.close(() => resolve(port)); });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Start a server process in its own process group, wait until `readyUrl` answers, and register its stop.
 * Returns { proc, stop(), log() }. Throws (after stopping it) if it exits early or is not ready in `timeoutMs`.
 */
export async function startServer(cmd, args, { cwd, env, readyUrl, timeoutMs = 60_000, name = cmd } = {}) {
  const proc = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d) => { out = (out + d.toString()).slice(-20_000); };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exited = null;
  proc.on('exit', (code, signal) => { exited = { code, signal }; });
  proc.on('error', (e) => { exited = { code: -1, signal: null }; keep(`${e.message}\n`); });

  const stop = onCleanup(async () => {
    if (exited || !proc.pid) return;
    for (const [sig, wait] of [['SIGTERM', 5000], ['SIGKILL', 2000]]) {
      try { process.kill(-proc.pid, sig); } catch { return; } // the whole group: the server and its children
      const t0 = Date.now();
      while (!exited && Date.now() - t0 < wait) await sleep(100);
      if (exited) return;
    }
  });

  const t0 = Date.now();
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`${name} exited (code ${exited.code}, signal ${exited.signal}) before it was ready:\n${out.slice(-3000)}`);
    }
    try {
      const r = await fetch(readyUrl, { signal: AbortSignal.timeout(2000) });
      if (r.status < 500) break;
    } catch { /* not up yet */ }
    if (Date.now() - t0 > timeoutMs) {
      await stop();
      throw new Error(`${name} did not answer ${readyUrl} within ${timeoutMs / 1000} s:\n${out.slice(-3000)}`);
    }
    await sleep(200);
  }
  return { proc, stop, log: () => out };
}

/** Serve folder `dir` with Python's http.server on 127.0.0.1 (a free port). Returns { url, stop }. */
export async function serveStatic(dir, { python = process.env.PYTHON || 'python3', timeoutMs = 30_000 } = {}) {
  if (!existsSync(dir)) throw new Error(`nothing to serve: ${dir} does not exist`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  const srv = await startServer(python, ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', dir],
    { readyUrl: url, timeoutMs, name: 'http.server' });
  return { url, stop: srv.stop };
}

/** Launch Debian's Chromium headless with the no-network flags (closed at cleanup). */
export async function launchBrowser({ timeoutMs = 60_000 } = {}) {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run 'bash tools/browser/setup.sh' (apt-get install chromium)`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: timeoutMs });
  onCleanup(() => browser.close());
  return browser;
}

const isLocal = (u) => { try { return ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(u).hostname); } catch { return false; } };

/**
 * A browser context whose pages may only reach 127.0.0.1 (other requests are aborted and listed in `blocked`).
 * data: and blob: URLs are not requests and load as usual.
 */
export async function newContext(browser, { viewport = { width: 1280, height: 900 } } = {}) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const blocked = new Set();
  await context.route((u) => !isLocal(u.href), (route) => { blocked.add(route.request().url()); return route.abort('blockedbyclient'); });
  context.blocked = blocked;
  return context;
}

/**
 * Watch a page for problems: console errors, uncaught exceptions, local requests that failed or answered >= 400.
 * Console errors caused by the aborted non-local requests are not problems (the network is closed here): they are
 * kept in `offline`. Returns { problems, offline, reset() }.
 */
export function watchPage(page) {
  const w = { problems: [], offline: [] };
  w.reset = () => { w.problems = []; w.offline = []; };
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const where = msg.location()?.url || '';
    const text = msg.text();
    if (/ERR_BLOCKED_BY_CLIENT/.test(text) || (where && !isLocal(where) && !where.startsWith('data:'))) w.offline.push(text);
    else if (/Failed to load resource/.test(text) && where && isLocal(where)) { /* reported by the response/request listeners with its URL */ }
    else w.problems.push(`console error: ${text}${where ? ` (${where})` : ''}`);
  });
  page.on('pageerror', (err) => w.problems.push(`page error: ${err.message}`));
  page.on('requestfailed', (req) => {
    if (!isLocal(req.url())) return;
    w.problems.push(`request failed: ${req.url()} (${req.failure()?.errorText})`);
  });
  page.on('response', (res) => {
    if (isLocal(res.url()) && res.status() >= 400) w.problems.push(`HTTP ${res.status()}: ${res.url()}`);
  });
  return w;
}

/**
 * Every <img> of the page, made to load (lazy ones included) and checked: broken means it did not load or has
 * naturalWidth 0. Returns { total, broken: [src...], offline: [src...] } (offline: non-local images, not loadable here).
 */
export async function checkImages(page, { timeoutMs = 15_000 } = {}) {
  return page.evaluate(async (timeoutMs) => {
    const imgs = [...document.images];
    const wait = (img) => new Promise((resolve) => {
      img.loading = 'eager';
      if (img.complete) return resolve();
      img.addEventListener('load', resolve, { once: true });
      img.addEventListener('error', resolve, { once: true });
    });
    await Promise.race([Promise.all(imgs.map(wait)), new Promise((r) => setTimeout(r, timeoutMs))]);
    const local = (src) => src.startsWith('data:') || src.startsWith('blob:') || ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(src, location.href).hostname);
    const bad = imgs.filter((i) => !i.complete || i.naturalWidth === 0);
    const short = (s) => (s.startsWith('data:') ? `${s.slice(0, 40)}... (${s.length} chars)` : s);
    return {
      total: imgs.length,
      broken: bad.filter((i) => local(i.currentSrc || i.src)).map((i) => short(i.currentSrc || i.src)),
      offline: bad.filter((i) => !local(i.currentSrc || i.src)).map((i) => i.currentSrc || i.src),
    };
  }, timeoutMs);
}

/** Print a table-like summary line for each result and a total; returns the number of failures. */
export function summarise(name, results) {
  const failed = results.filter((r) => r.problems.length);
  console.log(`\n${name}: ${results.length} checked, ${failed.length} failed`);
  for (const r of failed) {
    console.log(`  FAIL ${r.name}`);
    for (const p of r.problems.slice(0, 20)) console.log(`       - ${p}`);
    if (r.problems.length > 20) console.log(`       - ... ${r.problems.length - 20} more`);
  }
  return failed.length;
}
