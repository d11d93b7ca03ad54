"""Run every notebook in `nbs/` as a test (nbdev's `test_nb`, as `nbdev_test` does), each in its own process with
a time limit, two at a time, longest first (by the times in `tools/nb_times.json`, which `--record` rewrites; a notebook
not listed there counts as the longest), and end with the line `N passed, N failed` that CI reads.

Each notebook's process is forked from one that has already imported torch, matplotlib, nbdev and every decomp module
(and never ran a torch op, so no thread pool is copied): a notebook starts in a fresh process without paying the 2-5 s
of imports again. Where `os.fork` is missing, or with `--spawn`, each notebook runs in a new interpreter instead.

    python tools/test_nbs.py                 # all notebooks, fast mode (cells flagged `slow` skipped)
    python tools/test_nbs.py nbs/13*.ipynb   # some notebooks
    python tools/test_nbs.py --flags slow    # also run the `#| slow` cells
    python tools/test_nbs.py --record        # all notebooks, then write their times to tools/nb_times.json
"""
import argparse, importlib, json, multiprocessing, os, pkgutil, signal, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMES = ROOT / 'tools' / 'nb_times.json'
RUN_ONE = ("import sys; from nbdev.test import test_nb; from nbdev.config import get_config; "
           "cfg = get_config(); from pathlib import Path; ok, _ = test_nb(Path(sys.argv[1]), skip_flags=cfg.tst_flags.split(), "
           "force_flags=sys.argv[2].split(), basepath=cfg.config_path); sys.exit(0 if ok else 1)")


# A torchrun rank that aborts at interpreter shutdown after its work is done ("terminate called without an active
# exception", gloo) has been seen about once in five full runs and never in 30 direct runs of the same script: a notebook
# failing with exactly that is run once more, and the line says so. Any other failure fails at once.
SHUTDOWN_ABORT = 'terminate called without an active exception'


def run(nb: Path, flags: str, timeout: int, once):
    "One notebook through `once` (`run_forked`, or `run_once` with its environment), once more after a torchrun shutdown abort."
    nb, ok, secs, log = once(nb, flags, timeout)
    if not ok and SHUTDOWN_ABORT in log:
        print(f'RETRY {nb.name}: a torchrun rank aborted at shutdown ({SHUTDOWN_ABORT!r}); running it once more', flush=True)
        nb, ok, secs2, log2 = once(nb, flags, timeout)
        secs, log = secs + secs2, log + '\n--- retry ---\n' + log2
    return nb, ok, secs, log


def preload():
    "Import what every notebook imports, once, in the process the notebooks are forked from (no torch op runs here)."
    import torch, matplotlib  # noqa: F401
    import matplotlib.pyplot  # noqa: F401
    import fastcore.test, nbdev.showdoc, nbdev.test, execnb.shell  # noqa: F401
    import decomp
    for m in pkgutil.walk_packages(decomp.__path__, 'decomp.'):
        try: importlib.import_module(m.name)
        except ImportError: pass  # an optional extra that is not installed: the notebooks that need it say so themselves


def _child(nb: Path, flags: str, log: str):
    "In the forked process: its own process group (so a timeout kills what it started), output to `log`, then the notebook."
    os.setpgid(0, 0)
    fd = os.open(log, os.O_WRONLY | os.O_TRUNC)
    os.dup2(fd, 1); os.dup2(fd, 2)
    os.chdir(nb.parent)
    from nbdev.test import test_nb
    from nbdev.config import get_config
    cfg = get_config()
    ok, _ = test_nb(nb, skip_flags=cfg.tst_flags.split(), force_flags=flags.split(), basepath=cfg.config_path)
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(0 if ok else 1)


def run_forked(nb: Path, flags: str, timeout: int):
    t0 = time.time()
    with tempfile.NamedTemporaryFile('r', suffix='.log', prefix=nb.stem + '-') as f:
        p = multiprocessing.get_context('fork').Process(target=_child, args=(nb, flags, f.name))
        p.start(); p.join(timeout)
        timed_out = p.is_alive()
        if timed_out:
            try: os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError: pass
            p.join()
        log = f.read()
    ok = p.exitcode == 0 and not timed_out
    return nb, ok, time.time() - t0, (f'timed out after {timeout} s\n' if timed_out else '') + log


def run_once(nb: Path, flags: str, timeout: int, env: dict):
    t0 = time.time()
    try:
        p = subprocess.run([sys.executable, '-c', RUN_ONE, str(nb), flags], cwd=nb.parent, timeout=timeout,
                           capture_output=True, text=True, env=env)
        ok, log = p.returncode == 0, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        ok, log = False, f'timed out after {timeout} s\n' + (e.stdout or b'').decode() + (e.stderr or b'').decode()
    return nb, ok, time.time() - t0, log


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('paths', nargs='*', help='notebooks to run (default: every nbs/*.ipynb)')
    ap.add_argument('--flags', default='', help='space-separated test flags to run, e.g. "slow"')
    ap.add_argument('--workers', type=int, default=2, help='notebooks run at once')
    ap.add_argument('--timeout', type=int, default=900, help='seconds allowed per notebook')
    ap.add_argument('--record', action='store_true', help='write the measured times to tools/nb_times.json')
    ap.add_argument('--spawn', action='store_true', help='start every notebook in a new interpreter instead of forking a preloaded one')
    a = ap.parse_args()
    nbs = sorted(Path(p).resolve() for p in a.paths) if a.paths else sorted((ROOT / 'nbs').glob('*.ipynb'))
    nbs = [nb for nb in nbs if not nb.name.startswith('_')]
    # longest first: with two workers the run ends when the last long notebook does, so start those early
    known = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    nbs.sort(key=lambda nb: -known.get(nb.name, float('inf')))
    if not nbs:
        print('no notebook was eligible for testing')
        print('0 passed, 1 failed')
        sys.exit(1)
    # notebooks run side by side share the cores: one BLAS/OpenMP pool per core, not per notebook
    env = {**os.environ, 'MPLBACKEND': 'Agg'}
    env.setdefault('OMP_NUM_THREADS', str(max(1, (os.cpu_count() or 1) // a.workers)))
    fork = hasattr(os, 'fork') and not a.spawn
    t0 = time.time()
    if fork:  # the forked notebooks inherit this process's environment and imports
        os.environ.update(MPLBACKEND='Agg', OMP_NUM_THREADS=env['OMP_NUM_THREADS'])
        preload()
        print(f'imports preloaded in {time.time() - t0:.1f} s; each notebook runs in a process forked from this one', flush=True)
    n_ok = n_bad = 0
    times = {}
    once = run_forked if fork else (lambda nb, flags, timeout: run_once(nb, flags, timeout, env))
    with ThreadPoolExecutor(a.workers) as ex:
        for nb, ok, secs, log in ex.map(lambda nb: run(nb, a.flags, a.timeout, once), nbs):
            times[nb.name] = round(secs, 1)
            print(f"{'PASS' if ok else 'FAIL'} {nb.name} ({secs:.0f} s)", flush=True)
            if ok: n_ok += 1
            else:
                n_bad += 1
                print('\n'.join('    ' + l for l in log.strip().splitlines()[-60:]), flush=True)
    if a.record: TIMES.write_text(json.dumps(dict(sorted({**known, **times}.items())), indent=1) + '\n')  # a subset updates its own rows
    print(f'all notebooks in {time.time() - t0:.0f} s, imports included ({sum(times.values()):.0f} s of notebook time, {a.workers} at a time)')
    print(f'{n_ok} passed, {n_bad} failed')
    sys.exit(1 if n_bad else 0)


if __name__ == '__main__':
    main()
