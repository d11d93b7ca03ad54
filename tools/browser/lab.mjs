// Drive a notebook in JupyterLab as a person would, in headless Chromium: start JupyterLab on 127.0.0.1 (a free
// port, a random token, autosave off so that the notebook file is never rewritten, no news or update checks),
// open a notebook, run all cells, read the errors back, and act on widgets. Used by `run_notebook_check.mjs` and
// meant for `tools/dashboards_check.sh` (make dashboards-check).
//
//   import { launchBrowser, newContext, runMain } from './lib.mjs';
//   import { startLab, openNotebook, runAllCells, notebookReport, outputsFingerprint, nudgeSlider } from './lab.mjs';
//   const lab = await startLab({ root: repoRoot });            // stopped at exit, kernels shut down
//   const page = await (await newContext(await launchBrowser())).newPage();
//   await openNotebook(page, lab, 'nbs/41_dashboards.ipynb');   // { kernel, fromDialog }; throws after timeoutMs
//   await runAllCells(page, { timeoutMs: 300_000 });
//   const report = await notebookReport(page);                 // { cells, executed, errors: [...] }
//   const before = await outputsFingerprint(page);
//   await nudgeSlider(page, 0, 'ArrowRight', 3);               // first slider, 3 steps right
//   await waitForIdle(page);
//   if ((await outputsFingerprint(page)).hash === before.hash) throw new Error('the figure did not change');
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { freePort, startServer, onCleanup } from './lib.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Start JupyterLab serving `root`. Returns { url, token, stop(), log() }. `jupyter` is the venv's jupyter.
 * Settings live in a fresh temporary folder: autosave off, no news, no update check, read-only extension manager.
 */
export async function startLab({ root = '.', jupyter = '.venv/bin/jupyter', timeoutMs = 120_000 } = {}) {
  const port = await freePort();
  const token = randomBytes(16).toString('hex');
  const tmp = mkdtempSync(join(tmpdir(), 'decomp-lab-'));
  const settings = join(tmp, 'settings');
  const put = (plugin, value) => {
    const dir = join(settings, dirname_(plugin));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(settings, `${plugin}.jupyterlab-settings`), JSON.stringify(value));
  };
  put('@jupyterlab/docmanager-extension/plugin', { autosave: false });
  put('@jupyterlab/apputils-extension/notification', { fetchNews: 'false', checkForUpdates: false });
  onCleanup(() => rmSync(tmp, { recursive: true, force: true }));
  const url = `http://127.0.0.1:${port}/`;
  const srv = await startServer(resolve(jupyter), [
    'lab', '--no-browser', '--allow-root', '--ServerApp.ip=127.0.0.1', `--ServerApp.port=${port}`, '--ServerApp.port_retries=0',
    `--IdentityProvider.token=${token}`, `--ServerApp.root_dir=${resolve(root)}`,
    '--LabApp.expose_app_in_browser=True', '--LabApp.news_url=None', '--LabApp.extension_manager=readonly',
    '--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate',
    `--LabApp.user_settings_dir=${settings}`, `--LabApp.workspaces_dir=${join(tmp, 'workspaces')}`,
  ], {
    env: { JUPYTER_CONFIG_DIR: join(tmp, 'config'), JUPYTER_RUNTIME_DIR: join(tmp, 'runtime'), MPLBACKEND: 'module://matplotlib_inline.backend_inline' },
    readyUrl: `${url}api/status?token=${token}`, timeoutMs, name: 'jupyter lab',
  });
  // Shut the kernels down through the server before the process group is signalled (registered after, so run first).
  const shutdown = onCleanup(async () => {
    try { await fetch(`${url}api/shutdown?token=${token}`, { method: 'POST', signal: AbortSignal.timeout(5000) }); } catch { /* gone */ }
    const t0 = Date.now();
    while (srv.proc.exitCode === null && srv.proc.signalCode === null && Date.now() - t0 < 10_000) await sleep(200);
  });
  return { url, token, log: srv.log, stop: async () => { await shutdown(); await srv.stop(); } };
}

function dirname_(p) { return p.split('/').slice(0, -1).join('/'); }

/**
 * Open `relPath` (relative to the lab's root) and wait until its kernel is ready, for at most `timeoutMs`. A notebook
 * without a (known) kernelspec makes JupyterLab ask for a kernel in a dialog: `kernel` (default python3) is chosen there
 * and started. Returns { kernel, fromDialog } (the kernel's name; whether it was chosen in that dialog). Throws, naming
 * the notebook and what was missing, when no kernel is ready and idle in time.
 */
export async function openNotebook(page, lab, relPath, { timeoutMs = 120_000, kernel = 'python3' } = {}) {
  const deadline = Date.now() + timeoutMs;
  const left = () => Math.max(1, deadline - Date.now());
  const path = relPath.split('/').map(encodeURIComponent).join('/');
  const exists = await fetch(`${lab.url}api/contents/${path}?content=0&token=${lab.token}`);
  if (!exists.ok) throw new Error(`JupyterLab cannot open ${relPath} (HTTP ${exists.status} from its contents API)`);
  try {
    await page.goto(`${lab.url}lab/tree/${path}?token=${lab.token}&reset`, { waitUntil: 'domcontentloaded', timeout: left() });
    await page.waitForFunction(() => window.jupyterapp?.shell?.currentWidget?.sessionContext, null, { timeout: left() });
  } catch (e) {
    throw new Error(`opening ${relPath}: JupyterLab showed no notebook within ${timeoutMs / 1000} s (${e.message.split('\n')[0]})`);
  }
  let state, chose = false;
  for (;;) {
    state = await page.evaluate(() => {
      const w = window.jupyterapp.shell.currentWidget, sc = w?.sessionContext;
      const k = sc?.session?.kernel;
      return { file: !!w?.context?.isReady, session: !!sc?.isReady, kernel: k?.name ?? null, status: k?.status ?? null,
               dialog: document.querySelector('.jp-Dialog .jp-Dialog-header')?.textContent.trim() ?? null };
    });
    if (state.file && state.session && state.kernel && state.status === 'idle') break;
    if (state.dialog !== null) {
      await chooseKernelInDialog(page, kernel, relPath);
      chose = true;
    }
    if (Date.now() >= deadline) {
      const what = !state.file ? 'the file never loaded'
        : state.dialog !== null ? `a dialog "${state.dialog}" stayed open`
        : !state.kernel ? `no kernel was started${chose ? ` (chose ${kernel} in the kernel dialog)` : ''}; does the notebook have a kernelspec, and is ${kernel} installed (jupyter kernelspec list)?`
        : `its kernel ${state.kernel} is ${state.status}`;
      throw new Error(`opening ${relPath}: no ready kernel after ${timeoutMs / 1000} s: ${what}`);
    }
    await sleep(250);
  }
  await waitForIdle(page, { timeoutMs: left() });
  return { kernel: state.kernel, fromDialog: chose };
}

/** In JupyterLab's "Select Kernel" dialog, pick the kernel named `kernel` (e.g. python3) and accept. */
async function chooseKernelInDialog(page, kernel, relPath) {
  const dialog = page.locator('.jp-Dialog').first();
  const select = dialog.locator('select');
  if (await select.count()) {
    const options = await select.first().locator('option').evaluateAll((os) => os.map((o) => ({ value: o.value, label: o.textContent.trim() })));
    const pick = options.find((o) => o.value.includes(`"${kernel}"`) || o.value === kernel)
      ?? options.find((o) => o.label.toLowerCase().replace(/\s+/g, '') === kernel.toLowerCase());
    if (!pick) throw new Error(`opening ${relPath}: the kernel dialog offers no ${kernel} kernel (offers: ${options.map((o) => o.label).join(', ')})`);
    await select.first().selectOption(pick.value);
  }
  await dialog.locator('.jp-mod-accept').first().click({ timeout: 5_000 }).catch(() => { /* closed meanwhile */ });
}

/** Wait until the current notebook's kernel is idle and no cell is queued or running. */
export async function waitForIdle(page, { timeoutMs = 120_000, settleMs = 500 } = {}) {
  const t0 = Date.now();
  let quietSince = null;
  for (;;) {
    const busy = await page.evaluate(() => {
      const w = window.jupyterapp.shell.currentWidget;
      const kernel = w?.sessionContext?.session?.kernel;
      if (!kernel) return 'no kernel';
      if (kernel.status === 'dead') return 'dead';
      const running = [...document.querySelectorAll('.jp-InputPrompt')].some((p) => p.textContent.includes('[*]'));
      return kernel.status !== 'idle' || running ? 'busy' : '';
    });
    if (busy === 'dead') throw new Error('the kernel died');
    if (!busy) {
      quietSince ??= Date.now();
      if (Date.now() - quietSince >= settleMs) return;
    } else quietSince = null;
    if (Date.now() - t0 > timeoutMs) throw new Error(`the notebook was still busy (${busy}) after ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}

/** Run every cell of the current notebook (Run > Run All Cells) and wait for the end. */
export async function runAllCells(page, { timeoutMs = 600_000 } = {}) {
  await page.evaluate(() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); });
  await sleep(500);
  await waitForIdle(page, { timeoutMs });
}

/** What ran: { cells, executed, errors: [{ cell, ename, evalue }] } from the notebook's model, with code cells only. */
export async function notebookReport(page) {
  return page.evaluate(() => {
    const w = window.jupyterapp.shell.currentWidget;
    const cells = [...w.model.cells].map((c, i) => ({ c, i })).filter(({ c }) => c.type === 'code');
    const errors = [];
    for (const { c, i } of cells) {
      for (const o of c.outputs.toJSON()) {
        if (o.output_type === 'error') errors.push({ cell: i, ename: o.ename, evalue: String(o.evalue).slice(0, 500) });
      }
    }
    return { cells: cells.length, executed: cells.filter(({ c }) => c.executionCount != null).length, errors };
  });
}

/**
 * A fingerprint of what the outputs show: the text of every output and the source of every image/canvas in them.
 * Compare two to tell whether a widget interaction changed a figure or a label. Returns { hash, images, text }.
 */
export async function outputsFingerprint(page, selector = '.jp-OutputArea-output') {
  const parts = await page.evaluate((selector) => [...document.querySelectorAll(selector)].map((o) => [
    o.innerText,
    ...[...o.querySelectorAll('img')].map((i) => i.src),
    ...[...o.querySelectorAll('canvas')].map((c) => { try { return c.toDataURL(); } catch { return ''; } }),
  ].join('\n')), selector);
  const text = parts.join('\n---\n');
  return {
    hash: createHash('sha256').update(text).digest('hex').slice(0, 16),
    images: await page.locator(`${selector} img`).count(),
    text: text.replace(/data:[^\s]{80,}/g, '<data>').slice(0, 2000),
  };
}

/** Press `key` `times` times on the handle of the `index`-th ipywidgets slider (0 = first on the page). */
export async function nudgeSlider(page, index = 0, key = 'ArrowRight', times = 1) {
  const handle = page.locator('.widget-slider .noUi-handle, .widget-slider .ui-slider-handle, .jupyter-widget-slider .noUi-handle').nth(index);
  await handle.scrollIntoViewIfNeeded();
  await handle.focus();
  for (let k = 0; k < times; k++) await handle.press(key);
}

/** Choose `value` (its label) in the `index`-th ipywidgets dropdown. */
export async function chooseDropdown(page, index, value) {
  const select = page.locator('.widget-dropdown select').nth(index);
  await select.scrollIntoViewIfNeeded();
  await select.selectOption({ label: value });
}
