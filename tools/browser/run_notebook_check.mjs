// Run a notebook in JupyterLab in headless Chromium, as a person would, and fail if a cell raises, a cell did not
// run, or the kernel dies. The notebook file is not modified (autosave is off and nothing is saved).
//
//   node tools/browser/run_notebook_check.mjs nbs/41_dashboards.ipynb [--screenshot output/x.png] [--timeout 600]
//        [--root .] [--jupyter .venv/bin/jupyter] [--slider N]
//   node tools/browser/run_notebook_check.mjs --demo [--screenshot output/lab_demo.png]
//
// --slider N: after the run, nudge the N-th ipywidgets slider (0 = first) and fail unless the outputs change (the
// figure or the labels), as `make dashboards-check` must show. --demo writes a small notebook with a slider and a
// figure into a temporary folder and checks it that way: a self-test of this machinery.
import { existsSync, mkdirSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { launchBrowser, newContext, watchPage, runMain, onCleanup } from './lib.mjs';
import { startLab, openNotebook, runAllCells, notebookReport, outputsFingerprint, nudgeSlider, waitForIdle } from './lab.mjs';

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    root: { type: 'string', default: '.' },
    jupyter: { type: 'string', default: '.venv/bin/jupyter' },
    screenshot: { type: 'string' },
    timeout: { type: 'string', default: '600' },
    slider: { type: 'string' },
    demo: { type: 'boolean', default: false },
  },
});

const DEMO = {
  cells: [
    ['markdown', '# Demo\n\nA slider that redraws a figure.'],
    ['code', 'import ipywidgets as w, matplotlib.pyplot as plt, numpy as np\n'
      + 'out = w.Output()\n'
      + 'def draw(k):\n'
      + '    with out:\n'
      + '        out.clear_output(wait=True)\n'
      + '        fig, ax = plt.subplots(figsize=(4, 2.5))\n'
      + '        ax.plot(np.sin(np.linspace(0, k, 200))); ax.set_title(f"k = {k}"); ax.set_xlabel("x"); ax.set_ylabel("sin")\n'
      + '        plt.show()\n'
      + 's = w.IntSlider(value=3, min=1, max=10, description="k")\n'
      + 's.observe(lambda ch: draw(ch["new"]), names="value")\n'
      + 'draw(s.value)\n'
      + 'w.VBox([s, out])'],
  ],
};

function demoNotebook() {
  const dir = mkdtempSync(join(tmpdir(), 'decomp-lab-demo-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const nb = {
    nbformat: 4, nbformat_minor: 5,
    metadata: { kernelspec: { name: 'python3', display_name: 'Python 3', language: 'python' } },
    cells: DEMO.cells.map(([t, s], i) => ({ cell_type: t, id: `c${i}`, metadata: {}, source: s, ...(t === 'code' ? { outputs: [], execution_count: null } : {}) })),
  };
  writeFileSync(join(dir, 'demo.ipynb'), JSON.stringify(nb));
  return { root: dir, nb: 'demo.ipynb' };
}

async function main() {
  let root = resolve(opt.root);
  let nb = positionals[0];
  if (opt.demo) ({ root, nb } = demoNotebook());
  if (!nb) throw new Error('give a notebook (path relative to --root), or --demo');
  // the notebook: a path from the current folder, or else from --root
  const file = existsSync(resolve(nb)) && !opt.demo ? resolve(nb) : resolve(root, nb);
  if (!existsSync(file)) throw new Error(`no notebook ${nb} (looked in . and in ${root})`);
  const rel = relative(root, file);
  if (rel.startsWith('..')) throw new Error(`${file} is outside --root ${root}`);
  const limit = Number(opt.timeout) * 1000;
  const slider = opt.demo && opt.slider === undefined ? 0 : opt.slider === undefined ? null : Number(opt.slider);
  const t0 = Date.now();
  const secs = () => ((Date.now() - t0) / 1000).toFixed(1);

  const lab = await startLab({ root, jupyter: opt.jupyter });
  console.log(`notebook-check: JupyterLab at ${lab.url} (${secs()} s)`);
  const browser = await launchBrowser();
  const context = await newContext(browser, { viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  const watch = watchPage(page);
  const { kernel, fromDialog } = await openNotebook(page, lab, rel, { timeoutMs: 180_000 });
  console.log(`notebook-check: opened ${rel}, kernel ${kernel} ready${fromDialog ? ' (chosen in the kernel dialog: the notebook names no installed kernel)' : ''} (${secs()} s)`);
  await runAllCells(page, { timeoutMs: limit });
  const report = await notebookReport(page);
  console.log(`notebook-check: ran ${report.executed}/${report.cells} code cells (${secs()} s)`);
  const problems = report.errors.map((e) => `cell ${e.cell}: ${e.ename}: ${e.evalue}`);
  if (report.executed < report.cells) problems.push(`${report.cells - report.executed} code cell(s) did not run`);

  if (slider !== null && !problems.length) {
    const before = await outputsFingerprint(page);
    await nudgeSlider(page, slider, 'ArrowRight', 2);
    await waitForIdle(page, { timeoutMs: 60_000 });
    await page.waitForTimeout(500);
    const after = await outputsFingerprint(page);
    console.log(`notebook-check: slider ${slider} nudged: outputs ${before.hash} -> ${after.hash}, images ${before.images} -> ${after.images}`);
    if (before.hash === after.hash) problems.push(`moving slider ${slider} changed no output`);
  }
  if (opt.screenshot) {
    mkdirSync(dirname(opt.screenshot), { recursive: true });
    await page.screenshot({ path: opt.screenshot });
    console.log(`notebook-check: screenshot ${opt.screenshot}`);
  }
  if (watch.problems.length) {
    console.log(`notebook-check: ${watch.problems.length} browser message(s) (JupyterLab logs some on its own; not failures):`);
    watch.problems.slice(0, 8).forEach((p) => console.log(`       - ${p.slice(0, 300)}`));
  }
  console.log(`notebook-check: ${problems.length ? 'FAIL' : 'PASS'} ${rel} in ${secs()} s`);
  problems.forEach((p) => console.log(`       - ${p}`));
  return problems.length ? 1 : 0;
}

runMain(main, { limitMs: (Number(opt.timeout) + 180) * 1000, name: 'notebook-check' });
