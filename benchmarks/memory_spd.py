"""Peak memory of one SPD training step vs C and vs batch size (MNIST MLP 784-128-10, fc1 + fc2, KL).

tracemalloc does not see torch's allocations, so each configuration runs in a FRESH subprocess that
(1) builds the ComponentModel, the AdamW optimizer and the batch and runs one warm-up step (optimizer state
exists), (2) records its resident set size (VmRSS), resets the kernel's peak counter (`echo 5 > /proc/self/clear_refs`),
(3) runs one step and reads the new peak (VmHWM). The step's peak memory is VmHWM - VmRSS before the step.
glibc's malloc is told to serve every block >= 64 KiB with mmap (MALLOC_MMAP_THRESHOLD_), so freed tensors go back
to the kernel and the peak of the measured step is not hidden by memory kept from the warm-up step.
A least-squares line (slope, intercept, R^2) is fitted to each sweep.

Usage: python benchmarks/memory_spd.py [--json out.json]
"""
from __future__ import annotations
import argparse, json, os, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _kb(field: str) -> int:
    for line in open('/proc/self/status'):
        if line.startswith(field): return int(line.split()[1])
    raise RuntimeError(field)


def worker(C: int, batch: int):
    import gc
    import torch
    sys.path.insert(0, str(HERE))
    from bench_spd import CASES, DecompSPD, build
    torch.set_num_threads(1)
    case = {**CASES['mnist_mlp'], 'modules': ['fc1', 'fc2']}
    cm, cfg, x = build(case, batch=batch, C=C)
    step = DecompSPD(cm, cfg)
    step.step(x)
    gc.collect()
    before = _kb('VmRSS')
    with open('/proc/self/clear_refs', 'w') as f: f.write('5')
    step.step(x)
    peak = _kb('VmHWM')
    print(json.dumps({'C': C, 'batch': batch, 'rss_before_mb': before / 1024, 'peak_mb': peak / 1024,
                      'step_peak_mb': (peak - before) / 1024}))


def measure(C: int, batch: int) -> dict:
    env = {**os.environ, 'MALLOC_MMAP_THRESHOLD_': '65536', 'OMP_NUM_THREADS': '1'}
    out = subprocess.run([sys.executable, __file__, '--worker', str(C), str(batch)], env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def fit(x, y) -> dict:
    x, y = np.asarray(x, float), np.asarray(y, float)
    slope, icpt = np.polyfit(x, y, 1)
    pred = slope * x + icpt
    r2 = 1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    return {'slope_mb': float(slope), 'intercept_mb': float(icpt), 'r2': float(r2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--worker', nargs=2, type=int, default=None)
    ap.add_argument('--Cs', default='50,100,200,400')
    ap.add_argument('--batches', default='512,1024,2048,4096')
    ap.add_argument('--C_fixed', type=int, default=100)
    ap.add_argument('--batch_fixed', type=int, default=1024)
    ap.add_argument('--parallel', type=int, default=4)
    ap.add_argument('--json', default=None)
    args = ap.parse_args()
    if args.worker: return worker(*args.worker)
    Cs, Bs = [int(c) for c in args.Cs.split(',')], [int(b) for b in args.batches.split(',')]
    jobs = [(C, args.batch_fixed) for C in Cs] + [(args.C_fixed, B) for B in Bs]
    with ThreadPoolExecutor(args.parallel) as ex:  # memory is per process: running workers side by side does not change it
        pts = list(ex.map(lambda j: measure(*j), jobs))
    vs_C, vs_B = pts[:len(Cs)], pts[len(Cs):]
    res = {'model': 'MNIST MLP 784-128-10, fc1 + fc2 (same C), KL, 1 mask sample, decomp step',
           'vs_C': {'batch': args.batch_fixed, 'points': vs_C, 'fit': fit(Cs, [p['step_peak_mb'] for p in vs_C])},
           'vs_batch': {'C': args.C_fixed, 'points': vs_B, 'fit': fit(Bs, [p['step_peak_mb'] for p in vs_B])}}
    for key, var in (('vs_C', 'C'), ('vs_batch', 'batch')):
        f = res[key]['fit']
        pts = ', '.join(f"{p[var]}: {p['step_peak_mb']:.1f}" for p in res[key]['points'])
        print(f"peak MB {key}: {pts} | fit {f['slope_mb']:.4f} MB per unit + {f['intercept_mb']:.1f} MB, R^2 = {f['r2']:.4f}", flush=True)
    if args.json: Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
