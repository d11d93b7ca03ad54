#!/usr/bin/env bash
# Build the docs site into _docs/ and README.md from nbs/index.ipynb (`make docs`).
#
#   bash tools/build_docs.sh             # Quarto (`nbdev_docs`) when `quarto` is on PATH, else smalldocs
#   DOCS_ENGINE=smalldocs bash tools/build_docs.sh   # force the pure-Python path even where Quarto exists
#   DOCS_FORCE=1 bash tools/build_docs.sh            # re-process every notebook (ignore nbdev's _proc cache)
#
# Without Quarto the steps are those of `nbdev_docs`, done from Python (the `nbdev_proc_nbs` command cannot be
# used: it first tries to download and install Quarto with sudo):
#   1. nbs/nbdev.yml from settings.ini and nbs/sidebar.yml from the notebooks present (nbdev's own functions);
#   2. nbdev's processors turn nbs/*.ipynb into _proc/*.ipynb (show_doc cells executed, #| hide cells dropped,
#      front matter from the `# title` + `> summary` cells), incrementally like `nbdev_docs`;
#   3. smalldocs renders _proc/ (it reads _proc/_quarto.yml + nbdev.yml + sidebar.yml) into _proc/_docs, which is
#      moved to _docs/. Pages are named by nbdev's `output-file` (00_core.ipynb -> core.html), as Quarto names them;
#   4. README.md from the processed index notebook with nbconvert (what `nbdev_readme` does with Quarto).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
ENGINE="${DOCS_ENGINE:-auto}"

if [ ! -x "$BIN/python" ]; then
  echo "build_docs: $BIN/python not found; run 'make install' first (or set VENV=path/to/venv)" >&2
  exit 2
fi

# KaTeX for the maths, vendored into the site from tools/browser/node_modules (npm), so that pages render their
# maths without a CDN (and offline in `make docs-check`). Without npm the pages keep smalldocs's CDN links.
if command -v npm >/dev/null 2>&1; then
  bash tools/browser/setup.sh --node-only || echo "build_docs: npm ci failed: KaTeX stays on its CDN" >&2
fi

if [ "$ENGINE" = quarto ] || { [ "$ENGINE" = auto ] && command -v quarto >/dev/null 2>&1; }; then
  echo "build_docs: quarto found: nbdev_docs"
  exec "$BIN/nbdev_docs"
fi

# The Python below runs with -c, not from stdin: nbdev processes notebooks in spawned workers, which re-import
# __main__ from its file (there is none for stdin).
PYCODE=$(cat <<'PY'
import json, os, re, shutil, sys, time
from pathlib import Path, PurePosixPath

t0 = time.time()
from nbdev.config import get_config
from nbdev.quarto import nbdev_sidebar, refresh_quarto_yml

cfg = get_config()
root, nbs = cfg.config_path, cfg.nbs_path
cache, site_dir = root / '_proc', cfg.doc_path

# 1. nbdev.yml and sidebar.yml, as `nbdev_docs` writes them
refresh_quarto_yml()
nbdev_sidebar.__wrapped__(path=nbs)

# 2. nbdev's processed notebooks in _proc/, as nbdev's `proc_nbs` makes them (same files, same per-file mtime cache),
# but each notebook on its own, so that one failing notebook is named with its error and the others still go through.
# The cache also has to be refreshed when the package changed (show_doc signatures, doc links from _modidx.py), and
# lose the notebooks that were removed.
import nbdev.serve, nbdev.serve_drv
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from nbdev.doclinks import nbglob

modidx = cfg.lib_path / '_modidx.py'
cache.mkdir(exist_ok=True)
force = (os.environ.get('DOCS_FORCE') == '1' or (modidx.exists() and modidx.stat().st_mtime > cache.stat().st_mtime)
         or max(cfg.config_file.stat().st_mtime, Path(nbdev.serve.__file__).stat().st_mtime) > cache.stat().st_mtime)
for f in list(cache.rglob('*')):
    rel = f.relative_to(cache)
    if f.is_file() and rel.parts[0] != '_docs' and (force or not (nbs / rel).exists()):
        f.unlink()
files = nbglob(nbs, func=Path, file_glob='', file_re='')
files += [nbs / n for n in ('_quarto.yml', '_brand.yml') if (nbs / n).exists()]
cache_mtime = cache.stat().st_mtime
jobs = [j for j in (nbdev.serve._proc_file(f, cache, nbs, mtime=cache_mtime) for f in files) if j]
n_workers = max(1, min(len(jobs), int(os.environ.get('DOCS_WORKERS', min(2, os.cpu_count() or 1)))))
failed = {}
# nbdev warns, with the whole cell, about each cell that mixes imports and other code; the failures below say enough
os.environ['PYTHONWARNINGS'] = 'ignore::UserWarning:nbdev.processors'
if jobs:
    with ProcessPoolExecutor(n_workers, mp_context=get_context('spawn')) as ex:
        futures = {ex.submit(nbdev.serve_drv.main, j): j for j in jobs}
        for fut, (src, dst, _) in futures.items():
            try:
                fut.result()
            except Exception as e:  # nbdev's error names the cell; the remote traceback holds the cause
                tb = str(getattr(e.__cause__, 'tb', '') or '')
                causes = re.findall(r'^(\w+(?:Error|Exception|Exit)\b.*)$', tb, re.M)
                lines = str(e).strip().splitlines()
                failed[src.name] = (lines[0].rstrip(' :'), causes[0] if causes else '', lines[1:4])
                dst.unlink(missing_ok=True)
cache.touch()
if failed:
    for name, (msg, cause, code) in failed.items():
        print(f'build_docs: FAIL {name}: nbdev could not process it: {msg}' + (f'; {cause}' if cause else ''), file=sys.stderr)
        for line in code:
            print(f'    | {line}', file=sys.stderr)
    print('build_docs: to render show_doc, nbdev runs the exported cells, the show_doc cells and EVERY CELL THAT CONTAINS '
          'AN IMPORT, without the other cells before it. Move such imports into the imports cell at the top of the '
          'notebook (or mark a cell that must never run `#| eval: false`).', file=sys.stderr)
t_proc = time.time() - t0
if failed:  # leave the pages that could not be made out of the sidebar, so that the rest of the site is whole
    import yaml
    def keep(entries):
        out = []
        for e in entries:
            if isinstance(e, dict) and 'contents' in e:
                e = {**e, 'contents': keep(e['contents'])}
            elif str(e.get('href', '') if isinstance(e, dict) else e).split('/')[-1] in failed:
                continue
            out.append(e)
        return out
    bar = yaml.safe_load((cache / 'sidebar.yml').read_text())
    bar['website']['sidebar']['contents'] = keep(bar['website']['sidebar']['contents'])
    (cache / 'sidebar.yml').write_text(yaml.safe_dump(bar, sort_keys=False))

# 3. The site, with smalldocs. Quarto names a page by nbdev's `output-file` front matter (00_core.ipynb ->
# core.html): smalldocs does not read that key, so the Site below does, which keeps the pages' URLs (and nbdev's
# doc links, which point at them) the same as with `nbdev_docs`.
from smalldocs.config import BuildError, ConfigError, load
from smalldocs.site import Site


class NbdevSite(Site):
    def read(self, src):
        page = super().read(src)
        out = page.front.get('output-file')
        if src.suffix == '.ipynb' and isinstance(out, str) and out.endswith('.html') and '/' not in out:
            page.out = PurePosixPath(src.parent, out)
        return page


HARMLESS = ('format commonmark is not built',        # the README format of _quarto.yml (Quarto only)
            'format.html.keep-md is ignored',         # idem
            'output-file is not read by smalldocs')   # read by NbdevSite above
try:
    site = NbdevSite(load(cache), quiet=True)
    n_pages = site.build()
except (BuildError, ConfigError, ValueError) as e:
    print(f'build_docs: smalldocs could not render the site: {e}', file=sys.stderr)
    sys.exit(1)
outs = [p.out for p in site.pages.values()]
dupes = sorted({str(o) for o in outs if outs.count(o) > 1})
if dupes:
    print(f'build_docs: two notebooks give the same page {dupes}: rename one of them', file=sys.stderr)
    sys.exit(1)
built = cache / site_dir.name
shutil.rmtree(site_dir, ignore_errors=True)
shutil.move(str(built), str(site_dir))
warnings = [w for w in site.warnings if not any(h in w for h in HARMLESS)]

# KaTeX: smalldocs links it from a CDN; point every page at a copy in site_libs/katex when npm installed one.
from smalldocs.layout import KATEX
katex_src = root / 'tools' / 'browser' / 'node_modules' / 'katex' / 'dist'
katex_msg = 'KaTeX: from its CDN (no tools/browser/node_modules/katex: run bash tools/browser/setup.sh --node-only)'
if katex_src.is_dir():
    dst = site_dir / 'site_libs' / 'katex'
    for name in ['katex.min.css', 'katex.min.js', 'contrib/auto-render.min.js', *(
            f'fonts/{f.name}' for f in (katex_src / 'fonts').glob('*.woff2'))]:
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(katex_src / name, dst / name)
    n_math = 0
    for f in site_dir.rglob('*.html'):
        text = f.read_text(encoding='utf-8')
        if KATEX in text:
            depth = len(f.relative_to(site_dir).parts) - 1
            f.write_text(text.replace(KATEX, '../' * depth + 'site_libs/katex'), encoding='utf-8')
            n_math += 1
    katex_msg = f'KaTeX: vendored in site_libs/katex ({n_math} page(s) with maths)'

# 4. README.md from the processed index notebook: Quarto's cell options honoured, its images in README_files/
readme_msg = 'README.md: not written (no nbs/' + cfg.readme_nb + ')'
proc_index = cache / cfg.readme_nb
if proc_index.exists():
    import nbformat
    from nbconvert import MarkdownExporter

    nb = nbformat.read(proc_index, as_version=4)
    front, cells = {}, []
    for cell in nb.cells:
        if cell.cell_type == 'raw' and not front and cell.source.startswith('---'):
            import yaml
            front = yaml.safe_load(cell.source.strip().strip('-')) or {}
            continue
        if cell.cell_type == 'code':
            lines = cell.source.split('\n')
            opts = {}
            while lines and lines[0].startswith('#|'):
                key, _, val = lines.pop(0)[2:].partition(':')
                opts[key.strip()] = val.strip().lower()
            if opts.get('include') == 'false':
                continue
            cell.source = '' if opts.get('echo') == 'false' else '\n'.join(lines).strip('\n')
            if opts.get('output') == 'false':
                cell.outputs = []
            if not cell.source and not cell.outputs:
                continue
        cells.append(cell)
    head = [nbformat.v4.new_markdown_cell(f"# {front.get('title', cfg.lib_name)}")]
    if front.get('description'):
        head.append(nbformat.v4.new_markdown_cell(f"> {front['description']}"))
    nb.cells = head + cells
    exporter = MarkdownExporter()
    body, res = exporter.from_notebook_node(nb, resources={'output_files_dir': 'README_files'})
    for name, data in (res.get('outputs') or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    body = re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'
    readme = root / 'README.md'
    if not readme.exists() or readme.read_text() != body:
        readme.write_text(body)
    readme_msg = f'README.md: from nbs/{cfg.readme_nb} ({len(body.splitlines())} lines)'

pages = sorted(str(o) for o in outs)
print(f'build_docs: smalldocs site, {n_pages} page(s) in {site_dir.relative_to(root)}/: ' + ', '.join(pages))
if 'index.html' not in pages:
    print(f'build_docs: warning: no home page (index.html): nbs/{cfg.readme_nb} is missing')
print('build_docs: ' + readme_msg)
print('build_docs: ' + katex_msg)
for w in warnings:
    print(f'build_docs: warning: {w}')
print(f'build_docs: done in {time.time() - t0:.1f} s (notebooks processed in {t_proc:.1f} s: '
      f"{len(jobs)} {'(all)' if force else 'changed'})")
if failed:
    print(f"build_docs: FAILED: {len(failed)} notebook(s) could not be processed: {', '.join(failed)} "
          '(their pages are missing from the site)', file=sys.stderr)
    sys.exit(1)
PY
)
exec "$BIN/python" -c "$PYCODE"
