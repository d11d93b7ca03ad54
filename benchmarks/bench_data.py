"""Fast data paths (issue 19, item 4): `train_spd` fed a tensor vs a `DataLoader` over a `TensorDataset`, per step.

tensor      = `train_spd(target, X, cfg)`: the `Batcher` gathers each batch from a seeded permutation;
dataloader  = `train_spd(target, DataLoader(TensorDataset(X), batch_size, shuffle=True, generator=...), cfg)`, what a user
              writes: the `Batcher` walks the loader's own batch sampler and indexes the tensors once per batch;
per-sample  = the same loader with a `collate_fn` of its own (`default_collate` wrapped), which the fast path leaves alone:
              the loader's per-sample indexing and collation, i.e. what every DataLoader cost before the fast path.
Each round runs `--steps` steps of a fresh `train_spd` (same target, same config, same seed) per path; rounds are
interleaved, same threads, medians. Cases: TMS 5-2 with SPDConfig's defaults (C = 20, batch 2048, MSE) and the MNIST MLP
(fc1 + fc2, C = 100/100, batch 1024, KL). The loader-fed batches are checked first to be exactly the loader's own.

Usage: python benchmarks/bench_data.py [--reps 5] [--steps 30] [--json out.json]
"""
from __future__ import annotations
import argparse, json, os, sys, time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset, default_collate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved, machine, med, set_threads  # noqa: E402

from decomp.data import Batcher, load_mnist, sparse_features
from decomp.models import load_or_train_mnist_mlp, load_or_train_tms
from decomp.spd.train import SPDConfig, train_spd


def loader(X: torch.Tensor, batch: int, per_sample: bool = False) -> DataLoader:
    "A shuffled, seeded DataLoader over TensorDataset(X); `per_sample`: a collate_fn of its own (no fast path)."
    kw = {'collate_fn': lambda b: default_collate(b)} if per_sample else {}
    return DataLoader(TensorDataset(X), batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(0), **kw)


def cases():
    tms, _ = load_or_train_tms(5, 2, feature_prob=0.05, progress=False)
    X = sparse_features(100_000, 5, p=0.05, generator=torch.Generator().manual_seed(0))
    yield ('TMS 5-2, SPDConfig defaults (C = 20, batch 2048, MSE), 100k samples', tms, X,
           SPDConfig(target_modules=['linear1', 'linear2'], C=20, device='cpu', progress=False))
    mlp, _ = load_or_train_mnist_mlp(progress=False)
    yield ('MNIST MLP fc1 + fc2 (C = 100/100, batch 1024, KL), 60k images', mlp, load_mnist().x_train.flatten(1),
           SPDConfig(target_modules={'fc1': 100, 'fc2': 100}, C=None, distance='kl', batch_size=1024, device='cpu', progress=False))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--steps', type=int, default=30)
    ap.add_argument('--json', type=Path)
    a = ap.parse_args()
    set_threads()
    load_start, rows = list(os.getloadavg()), []
    for desc, target, X, cfg in cases():
        cfg = cfg.replace(steps=a.steps, log_every=a.steps)
        B = cfg.batch_size
        fast, slow = Batcher(loader(X, B), B), iter(loader(X, B))
        for s in range(3): assert torch.equal(fast(s)[0], next(slow)[0]), f'{desc}: batch {s} differs from the loader\'s'
        t0 = time.perf_counter(); [b for _, b in zip(range(a.steps), loader(X, B, per_sample=True))]
        collate_s = (time.perf_counter() - t0) / a.steps
        t0 = time.perf_counter(); bt = Batcher(loader(X, B), B); [bt(s) for s in range(a.steps)]
        fast_s = (time.perf_counter() - t0) / a.steps
        runs = {'tensor': lambda: train_spd(target, X, cfg),
                'dataloader': lambda: train_spd(target, loader(X, B), cfg),
                'per_sample': lambda: train_spd(target, loader(X, B, per_sample=True), cfg)}
        raw = interleaved(runs, reps=a.reps)
        per = {k: med(v) / a.steps for k, v in raw.items()}
        rows.append({'desc': desc, 'steps': a.steps, 'step_s': per, 'raw': raw, 'ratio': per['dataloader'] / per['tensor'],
                     'ratio_per_sample': per['per_sample'] / per['tensor'], 'batch_s': {'per_sample': collate_s, 'fast': fast_s}})
        print(f"{desc}: ms/step tensor {per['tensor']*1e3:.1f}, DataLoader {per['dataloader']*1e3:.1f} "
              f"({rows[-1]['ratio']:.3f}x), per-sample collation {per['per_sample']*1e3:.1f} ({rows[-1]['ratio_per_sample']:.2f}x); "
              f"one batch: per-sample {collate_s*1e3:.2f} ms, fast path {fast_s*1e3:.2f} ms", flush=True)
    res = {'machine': machine(), 'load_start': load_start, 'load_end': list(os.getloadavg()), 'cases': rows}
    if a.json: a.json.write_text(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
