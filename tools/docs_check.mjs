// Open every page of the built docs site in headless Chromium and fail on what a reader would see broken:
// console errors, uncaught exceptions, local files that fail to load, broken images (naturalWidth 0), maths that
// KaTeX could not render, and links to pages that do not exist. Saves a screenshot of the home page.
//
//   node tools/docs_check.mjs [--site _docs] [--screenshot output/docs_home.png] [--all-screenshots output/docs_pages]
//                             [--python .venv/bin/python] [--page-timeout 30] [--limit 300]
// Run it through `bash tools/docs_check.sh` (`make docs-check`), which installs Chromium and playwright-core first.
import { readdirSync, statSync, mkdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { parseArgs } from 'node:util';
import { launchBrowser, newContext, serveStatic, watchPage, checkImages, summarise, runMain } from './browser/lib.mjs';

const { values: opt } = parseArgs({
  options: {
    site: { type: 'string', default: '_docs' },
    screenshot: { type: 'string', default: 'output/docs_home.png' },
    'all-screenshots': { type: 'string' },
    python: { type: 'string', default: process.env.PYTHON || 'python3' },
    'page-timeout': { type: 'string', default: '30' },
    limit: { type: 'string', default: '300' },
  },
});
const site = resolve(opt.site);
const pageTimeout = Number(opt['page-timeout']) * 1000;

function htmlPages(dir) {
  const out = [];
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) { if (name !== 'site_libs' && !name.startsWith('.')) walk(p); }
      else if (name.endsWith('.html')) out.push(relative(dir, p).split(sep).join('/'));
    }
  };
  walk(dir);
  // the home page first, then the others in name order
  return out.sort((a, b) => (b === 'index.html') - (a === 'index.html') || a.localeCompare(b));
}

async function main() {
  let pages;
  try { pages = htmlPages(site); } catch { throw new Error(`no site at ${site}: run 'make docs' first`); }
  if (!pages.length) throw new Error(`no .html page in ${site}: run 'make docs' first`);
  const t0 = Date.now();
  const server = await serveStatic(site, { python: opt.python });
  const browser = await launchBrowser();
  const context = await newContext(browser);
  const page = await context.newPage();
  const watch = watchPage(page);
  const pageSet = new Set(pages);
  const results = [];
  const offline = new Set();
  console.log(`docs-check: ${pages.length} page(s) of ${relative(process.cwd(), site) || site}, served at ${server.url}`);

  for (const name of pages) {
    const t = Date.now();
    watch.reset();
    const problems = [];
    let info = { images: 0, math: 0, links: [] };
    try {
      const res = await page.goto(server.url + name, { waitUntil: 'load', timeout: pageTimeout });
      if (!res || !res.ok()) problems.push(`HTTP ${res ? res.status() : 'no response'} for the page itself`);
      await page.waitForLoadState('networkidle', { timeout: 5000 }).catch(() => {});
      const imgs = await checkImages(page, { timeoutMs: pageTimeout / 2 });
      imgs.broken.forEach((src) => problems.push(`broken image: ${src}`));
      imgs.offline.forEach((src) => offline.add(`image ${src}`));
      info = await page.evaluate(() => {
        const katexLocal = [...document.scripts].some((s) => /site_libs\/katex\/katex\.min\.js$/.test(s.src));
        const math = [...document.querySelectorAll('.math')];
        return {
          images: document.images.length,
          math: math.length,
          mathUnrendered: katexLocal ? math.filter((m) => !m.querySelector('.katex')).length : 0,
          mathErrors: [...document.querySelectorAll('.katex-error')].map((e) => e.getAttribute('title') || e.textContent).slice(0, 5),
          links: [...document.querySelectorAll('a[href]')].map((a) => a.href).filter((h) => h.startsWith(location.origin)),
          title: document.title,
          bodyText: document.body ? document.body.innerText.trim().length : 0,
        };
      });
      if (!info.bodyText) problems.push('the page is empty');
      if (info.mathUnrendered) problems.push(`${info.mathUnrendered} maths element(s) not rendered by KaTeX`);
      info.mathErrors.forEach((m) => problems.push(`KaTeX cannot render: ${m}`));
      for (const href of new Set(info.links)) {
        const path = decodeURIComponent(new URL(href).pathname).replace(/^\//, '');
        const target = path === '' || path.endsWith('/') ? `${path}index.html` : path;
        if (target.endsWith('.html') && !pageSet.has(target)) problems.push(`link to a missing page: ${target}`);
      }
      if (opt['all-screenshots']) {
        const file = join(opt['all-screenshots'], name.replace(/\//g, '__').replace(/\.html$/, '.png'));
        mkdirSync(dirname(file), { recursive: true });
        await page.screenshot({ path: file, fullPage: true });
      }
      if (name === 'index.html' && opt.screenshot) {
        mkdirSync(dirname(opt.screenshot), { recursive: true });
        await page.screenshot({ path: opt.screenshot });
      }
    } catch (e) {
      problems.push(`could not check the page: ${e.message.split('\n')[0]}`);
    }
    problems.unshift(...watch.problems);
    context.blocked.forEach((u) => offline.add(`request ${u}`));
    context.blocked.clear();
    results.push({ name, problems });
    const secs = ((Date.now() - t) / 1000).toFixed(1);
    console.log(`  ${problems.length ? 'FAIL' : 'PASS'} ${name.padEnd(36)} ${String(info.images).padStart(3)} image(s) ` +
      `${String(info.math).padStart(3)} maths  ${secs} s`);
  }
  if (!pageSet.has('index.html')) results.push({ name: '(home page)', problems: ['no index.html: nbs/index.ipynb missing?'] });

  if (offline.size) {
    console.log(`\ndocs-check: ${offline.size} request(s) to other hosts were not made (no network here; not failures):`);
    [...offline].slice(0, 10).forEach((m) => console.log(`       - ${m.slice(0, 200)}`));
  }
  const nFailed = summarise('docs-check', results);
  const shot = opt.screenshot && pageSet.has('index.html') ? ` screenshot of the home page: ${opt.screenshot}` : '';
  console.log(`docs-check: ${results.length} page(s) checked, ${nFailed} failed, in ${((Date.now() - t0) / 1000).toFixed(1)} s;${shot}`);
  return nFailed ? 1 : 0;
}

runMain(main, { limitMs: Number(opt.limit) * 1000, name: 'docs-check' });
