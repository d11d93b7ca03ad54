"""Where decomp's SPD step spends its time: per-stage timings and the top torch.profiler ops.

Usage: python benchmarks/profile_spd.py [case] (default tms_5_2); 1 thread unless BENCH_THREADS is set.
"""
from __future__ import annotations
import statistics, sys, time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_spd import CASES, DecompSPD, build  # noqa: E402
from common import set_threads  # noqa: E402

from decomp.spd.losses import faithfulness_loss, importance_minimality_loss, stochastic_recon_losses


def staged_step(d: DecompSPD, x, marks: dict):
    "decomp's step, split into stages with a timer (same calls as spd_loss_terms + backward + AdamW)."
    cm, cfg = d.cm, d.cfg
    def lap(name, t0):
        t = time.perf_counter(); marks.setdefault(name, []).append(t - t0); return t
    t = time.perf_counter()
    with record_function('1 target forward_with_cache'), torch.no_grad(): tout, inputs = cm.forward_with_cache(x)
    t = lap('1 target forward_with_cache', t)
    with record_function('2 calc_ci (CI functions)'): lo, up = cm.calc_ci(inputs)
    t = lap('2 calc_ci (CI functions)', t)
    with record_function('3 faithfulness'): faith = faithfulness_loss(cm)
    t = lap('3 faithfulness', t)
    with record_function('4 stochastic recon (masks + batched forward)'):
        rec = stochastic_recon_losses(cm, x, lo, tout, distance=cfg.distance, generator=d.gen)
    t = lap('4 stochastic recon (masks + batched forward)', t)
    with record_function('5 importance minimality'): imp = importance_minimality_loss(up, p=cfg.losses['importance_minimality'].p)
    t = lap('5 importance minimality', t)
    loss = faith + rec['stochastic_recon'] + rec['stochastic_recon_layerwise'] + cfg.losses['importance_minimality'].coeff * imp
    d.opt.zero_grad(set_to_none=True)
    with record_function('6 backward'): loss.backward()
    t = lap('6 backward', t)
    with record_function('7 AdamW step'): d.opt.step()
    lap('7 AdamW step', t)


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else 'tms_5_2'
    set_threads(int(__import__('os').environ.get('BENCH_THREADS', 1)))
    cm, cfg, x = build(CASES[name])
    d = DecompSPD(cm, cfg)
    marks = {}
    for _ in range(2): staged_step(d, x, {})
    for _ in range(5): staged_step(d, x, marks)
    tot = sum(statistics.median(v) for v in marks.values())
    print(f'{name}: median per stage (ms), total {tot*1e3:.1f}')
    for k, v in marks.items(): print(f'  {k:48s} {statistics.median(v)*1e3:8.1f}  ({statistics.median(v)/tot:5.1%})')
    with profile(activities=[ProfilerActivity.CPU], with_stack=False) as p:
        for _ in range(3): staged_step(d, x, {})
    print(p.key_averages().table(sort_by='self_cpu_time_total', row_limit=18))


if __name__ == '__main__':
    main()
