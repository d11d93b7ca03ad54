#!/usr/bin/env bash
# make dashboards-check: use the dashboards notebook in JupyterLab as a person would, in headless Chromium.
#
#   1. start JupyterLab on 127.0.0.1 (a free port, token, autosave off: the notebook file is never rewritten);
#   2. open nbs/41_dashboards.ipynb, run all cells; fail on any cell error or a cell that did not run;
#   3. component explorer (MNIST): move its component slider one step with the keyboard; fail unless the figure (the
#      PNG bytes behind the <img>) and the label change, and the label names the component the slider now shows;
#   4. component explorer (shapes CNN): choose another layer in its dropdown; same checks, label names the new layer;
#   5. input explorer (MNIST): move its input slider; same checks, label names the new input;
#   6. save output/dashboards_check.png (the component explorer after the change) and stop JupyterLab and Chromium
#      on every exit path (success, failure, time limit, Ctrl-C), through tools/browser/lib.mjs's cleanup.
#
#   bash tools/dashboards_check.sh [--timeout SECONDS]   # default 900 for the whole run
# Installs what it needs first (tools/browser/setup.sh: Debian chromium, npm ci for playwright-core).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
VENV="${VENV:-.venv}"
TIMEOUT=900
while [ $# -gt 0 ]; do
  case "$1" in
    --timeout) TIMEOUT="$2"; shift 2 ;;
    *) echo "dashboards_check: unknown option $1 (use --timeout SECONDS)" >&2; exit 2 ;;
  esac
done
if [ ! -x "$VENV/bin/jupyter" ]; then
  echo "dashboards_check: $VENV/bin/jupyter not found: run 'make install' first" >&2
  exit 2
fi
bash tools/browser/setup.sh

# The kernel inherits the environment. On a shared 2-core machine one BLAS/OpenMP thread per process avoids the
# oversubscription that makes torch several times slower; set OMP_NUM_THREADS yourself to override.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export DASH_ROOT="$ROOT" DASH_JUPYTER="$ROOT/$VENV/bin/jupyter" DASH_NOTEBOOK="${DASH_NOTEBOOK:-nbs/41_dashboards.ipynb}" \
       DASH_SCREENSHOT="$ROOT/output/dashboards_check.png" DASH_TIMEOUT="$TIMEOUT"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cat > "$TMP/dashboards_check.mjs" <<'JS'
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
const env = process.env;
const lib = await import(pathToFileURL(`${env.DASH_ROOT}/tools/browser/lib.mjs`).href);
const lab_ = await import(pathToFileURL(`${env.DASH_ROOT}/tools/browser/lab.mjs`).href);
const { launchBrowser, newContext, watchPage, runMain } = lib;
const { startLab, openNotebook, runAllCells, notebookReport, waitForIdle } = lab_;

const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(1);
const log = (m) => console.log(`dashboards-check: ${m} (${secs()} s)`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** What one explorer shows: its label, a hash of its figure's bytes, the controls' readouts and dropdown values. */
async function look(page, kind, i) {
  return page.evaluate(async ([kind, i]) => {
    const box = document.querySelectorAll(`.decomp-${kind}-explorer`)[i];
    if (!box) return null;
    const img = box.querySelector('img.decomp-figure');
    let hash = '', bytes = 0;
    if (img?.src) {
      const buf = await (await fetch(img.src)).arrayBuffer();
      bytes = buf.byteLength;
      const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
      hash = [...d.slice(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join('');
    }
    return {
      label: box.querySelector('.decomp-label')?.textContent.trim() ?? '',
      hash, bytes, width: img?.naturalWidth ?? 0,
      readouts: [...box.querySelectorAll('.widget-readout')].map((r) => r.textContent.trim()),
      selects: [...box.querySelectorAll('select')].map((s) => s.value),
    };
  }, [kind, i]);
}

/** Wait until explorer (kind, i) exists with a drawn figure and a label. */
async function ready(page, kind, i, timeoutMs = 120_000) {
  const loc = page.locator(`.decomp-${kind}-explorer`).nth(i);
  await loc.waitFor({ state: 'attached', timeout: timeoutMs });
  await loc.scrollIntoViewIfNeeded();
  const start = Date.now();
  for (;;) {
    const s = await look(page, kind, i);
    if (s && s.width > 0 && s.hash && s.label) return s;
    if (Date.now() - start > timeoutMs) throw new Error(`the ${kind} explorer #${i} has no figure after ${timeoutMs / 1000} s`);
    await sleep(250);
  }
}

/** Act, then wait until both the figure and the label of explorer (kind, i) changed; returns [before, after]. */
async function change(page, kind, i, act, what, timeoutMs = 120_000) {
  const before = await ready(page, kind, i);
  await act(page.locator(`.decomp-${kind}-explorer`).nth(i));
  const start = Date.now();
  for (;;) {
    await sleep(300);
    const after = await look(page, kind, i);
    if (after.hash !== before.hash && after.label !== before.label && after.width > 0) {
      await waitForIdle(page, { timeoutMs });
      const final = await look(page, kind, i);
      log(`${what}: figure ${before.hash} -> ${final.hash} (${final.bytes} bytes); label "${before.label.slice(0, 60)}..." -> "${final.label.slice(0, 60)}..."`);
      return [before, final];
    }
    if (Date.now() - start > timeoutMs) {
      throw new Error(`${what}: after ${timeoutMs / 1000} s the figure ${after.hash === before.hash ? 'did not change' : 'changed'} and `
        + `the label ${after.label === before.label ? 'did not change' : 'changed'} ("${after.label.slice(0, 80)}")`);
    }
  }
}

async function keyOnSlider(box, key) {
  const handle = box.locator('.noUi-handle').first();
  await handle.scrollIntoViewIfNeeded();
  await handle.focus();
  await handle.press(key);
}

async function main() {
  const problems = [];
  const lab = await startLab({ root: env.DASH_ROOT, jupyter: env.DASH_JUPYTER });
  log(`JupyterLab at ${lab.url}`);
  const browser = await launchBrowser();
  const context = await newContext(browser, { viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  const watch = watchPage(page);
  const { kernel, fromDialog } = await openNotebook(page, lab, env.DASH_NOTEBOOK, { timeoutMs: 180_000 });
  log(`opened ${env.DASH_NOTEBOOK}, kernel ${kernel} ready${fromDialog ? ' (chosen in the kernel dialog)' : ''}`);
  await runAllCells(page, { timeoutMs: Number(env.DASH_TIMEOUT) * 1000 });
  const report = await notebookReport(page);
  log(`ran ${report.executed}/${report.cells} code cells`);
  report.errors.forEach((e) => problems.push(`cell ${e.cell}: ${e.ename}: ${e.evalue}`));
  if (report.executed < report.cells) problems.push(`${report.cells - report.executed} code cell(s) did not run`);
  const counts = await page.evaluate(() => ['component', 'input'].map((k) => document.querySelectorAll(`.decomp-${k}-explorer`).length));
  log(`widgets on the page: ${counts[0]} component explorers, ${counts[1]} input explorers`);
  if (counts[0] < 2 || counts[1] < 1) problems.push(`expected >= 2 component and >= 1 input explorers as live widgets, found ${counts}`);

  if (!problems.length) {
    try {
      // 1. the component slider of the first component explorer (MNIST fc1)
      const [b1, a1] = await change(page, 'component', 0, (box) => keyOnSlider(box, 'ArrowRight'), 'component slider');
      const comp = a1.readouts[0];
      if (comp === b1.readouts[0]) problems.push(`the component slider's readout did not move (${comp})`);
      if (!b1.label.includes(`component ${b1.readouts[0]} of`)) problems.push(`before: the label does not name component ${b1.readouts[0]}: "${b1.label}"`);
      if (!a1.label.includes(`component ${comp} of`)) problems.push(`the label does not name component ${comp}: "${a1.label}"`);
      // 2. the layer dropdown of the shapes explorer: conv1 -> fc1
      const [, a2] = await change(page, 'component', 1, (box) => box.locator('select').first().selectOption('fc1'), 'layer dropdown');
      if (!a2.label.startsWith('fc1 component ')) problems.push(`after choosing fc1 the label reads "${a2.label}"`);
      // 3. the input slider of the first input explorer (MNIST)
      const [b3, a3] = await change(page, 'input', 0, (box) => keyOnSlider(box, 'ArrowRight'), 'input slider');
      const idx = a3.readouts[0];
      if (idx === b3.readouts[0]) problems.push(`the input slider's readout did not move (${idx})`);
      if (!b3.label.startsWith(`input ${b3.readouts[0]} of`)) problems.push(`before: the label does not name input ${b3.readouts[0]}: "${b3.label}"`);
      if (!a3.label.startsWith(`input ${idx} of`)) problems.push(`the label does not name input ${idx}: "${a3.label}"`);
      // the screenshot: the first component explorer, as changed in step 1
      await page.evaluate(() => document.querySelector('.decomp-component-explorer').closest('.jp-Cell').scrollIntoView({ block: 'start' }));
      await sleep(500);
    } catch (e) {
      problems.push(e.message);  // still take the screenshot below: it shows what the page looked like
    }
  }
  mkdirSync(dirname(env.DASH_SCREENSHOT), { recursive: true });
  await page.screenshot({ path: env.DASH_SCREENSHOT });
  log(`screenshot ${env.DASH_SCREENSHOT}`);
  if (watch.problems.length) {
    log(`${watch.problems.length} browser message(s) (JupyterLab logs some on its own; not failures):`);
    watch.problems.slice(0, 8).forEach((p) => console.log(`       - ${p.slice(0, 300)}`));
  }
  log(problems.length ? 'FAIL' : 'PASS');
  problems.forEach((p) => console.log(`       - ${p}`));
  return problems.length ? 1 : 0;
}

runMain(main, { limitMs: (Number(env.DASH_TIMEOUT) + 180) * 1000, name: 'dashboards-check' });
JS
node "$TMP/dashboards_check.mjs"
