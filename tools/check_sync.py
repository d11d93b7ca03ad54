"""Check that the committed package is the export of the notebooks and that the notebooks are clean.

Runs `nbdev_export` and `nbdev_clean` on a scratch copy of the repo, so the working tree is never touched, and
fails naming every file that would change."""
import filecmp, shutil, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def changed(a: Path, b: Path):
    "Files under `a` and `b` (same relative paths) that differ or exist on one side only."
    names = {p.relative_to(a) for p in a.rglob('*') if p.is_file() and '__pycache__' not in p.parts}
    names |= {p.relative_to(b) for p in b.rglob('*') if p.is_file() and '__pycache__' not in p.parts}
    return sorted(str(n) for n in names
                  if not ((a / n).exists() and (b / n).exists() and filecmp.cmp(a / n, b / n, shallow=False)))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for f in ['settings.ini', 'setup.py']: shutil.copy(ROOT / f, tmp / f)
        for d in ['nbs', 'decomp']: shutil.copytree(ROOT / d, tmp / d, ignore=shutil.ignore_patterns('__pycache__'))
        subprocess.run([str(BIN / 'nbdev_export')], cwd=tmp, check=True)
        subprocess.run([str(BIN / 'nbdev_clean')], cwd=tmp, check=True)
        stale = changed(ROOT / 'decomp', tmp / 'decomp')
        dirty = changed(ROOT / 'nbs', tmp / 'nbs')
    if stale: print('decomp/ is not the export of nbs/ (run nbdev_export): ' + ', '.join(stale))
    if dirty: print('notebooks are not clean (run nbdev_clean): ' + ', '.join(dirty))
    if stale or dirty: sys.exit(1)
    print('package in sync with notebooks; notebooks clean')


if __name__ == '__main__':
    main()
