"""Cost of adversarial masks: a persistent-PGD SPD training step vs a stochastic-only step, and the adversarial ladder.

stochastic step = what `train_spd` runs per step with the default loss rows (faithfulness, stochastic recon all layers +
                  layerwise, importance minimality): `spd_loss_terms` + backward + AdamW step.
persistent step = the same + the `persistent_pgd_recon` row (coefficient 1, past its warm-up): one more masked forward
                  under the kept sources (mixed with stochastic masks by `adv_fraction`), whose backward also gives the
                  sources' gradient, and the sources' sign-gradient step (`persistent_pgd_update`) before AdamW's.
Both start from the same parameters (deep copies) and the same batch; timed interleaved, same threads, medians.
Ladder = `adversarial_ladder(model, x, steps)` (shared sources, step size 0.1) on 1,000 MNIST test images, timed for
(20,) and (0, 20, 80, 320).

Usage: python benchmarks/bench_pgd.py [--reps 7] [--json out.json]
"""
from __future__ import annotations
import argparse, copy, json, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved, load, machine, med, set_threads  # noqa: E402

from decomp.data import load_mnist, sparse_features
from decomp.models import MLP, TMS
from decomp.spd.losses import adversarial_ladder, persistent_pgd_update
from decomp.spd.model import ComponentModel
from decomp.spd.train import SPDConfig, make_component_model, spd_loss_terms
from decomp.experiments.tms import tms_spd_config

PGD_ROW = {'coeff': 1.0, 'start_frac': 0.0}


class Step:
    "One SPD training step (the loss rows of `config`), persistent PGD sources kept in `state` across calls."
    def __init__(self, cm: ComponentModel, config: SPDConfig, seed: int = 1):
        self.cm, self.cfg, self.state = cm, config, {}
        self.opt = torch.optim.AdamW([{'params': cm.component_parameters(), 'weight_decay': 0.0},
                                      {'params': cm.ci_parameters(), 'weight_decay': 0.0}], lr=config.lr)
        self.gen, self.coeffs = torch.Generator().manual_seed(seed), config.coeffs()
        self.pgd = config.losses['persistent_pgd_recon'].coeff > 0

    def __call__(self, x):
        terms = spd_loss_terms(self.cm, x, self.cfg, self.cfg.steps // 2, self.gen, None, self.state)
        loss = sum(self.coeffs[k] * v for k, v in terms.items())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.pgd: persistent_pgd_update(self.state, self.cfg.losses['persistent_pgd_recon'])
        self.opt.step()
        return terms


def tms_case(batch: int):
    cfg = tms_spd_config(batch_size=batch, device='cpu')
    x = sparse_features(batch, 5, p=0.05, generator=torch.Generator().manual_seed(0))
    return f'TMS 5-2 (the 53 recipe: C=20, tied, delta), batch {batch}, MSE', TMS(5, 2, seed=0), cfg, x


def mnist_case(batch: int = 1024):
    cfg = SPDConfig(target_modules={'fc1': 100, 'fc2': 100}, C=None, distance='kl', losses={'importance_minimality': {'p': 1.0}}, batch_size=batch, progress=False, device='cpu')
    x = load_mnist().x_train[:batch].reshape(batch, -1)
    return f'MNIST MLP 784-128-10, fc1 + fc2 (C=100/100), batch {batch}, KL', MLP(784, 128, 10, seed=0), cfg, x


def step_case(desc, target, cfg, x, reps: int, adv_fraction: float) -> dict:
    pgd_cfg = cfg.replace(losses={**cfg.losses, 'persistent_pgd_recon': {**PGD_ROW, 'adv_fraction': adv_fraction}})
    cm = make_component_model(target, cfg)
    steps = {'stochastic': Step(cm, cfg), 'persistent_pgd': Step(copy.deepcopy(cm), pgd_cfg)}
    terms = {k: sorted(s(x)) for k, s in steps.items()}          # one step each (and the sources exist)
    assert 'persistent_pgd_recon' in terms['persistent_pgd'] and 'persistent_pgd_recon' not in terms['stochastic'], terms
    times = interleaved({k: (lambda s=s: s(x)) for k, s in steps.items()}, reps=reps, warmup=2)
    ts, tp = med(times['stochastic']), med(times['persistent_pgd'])
    return {'desc': desc, 'batch': x.shape[0], 'adv_fraction': adv_fraction, 'stochastic_s': ts, 'persistent_s': tp,
            'ratio': tp / ts, 'terms': terms, 'raw': times}


def ladder_case(reps: int) -> dict:
    x = load_mnist().x_test[:1000].reshape(1000, -1)
    cfg = SPDConfig(target_modules={'fc1': 100, 'fc2': 100}, C=None, distance='kl', progress=False, device='cpu')
    cm = make_component_model(MLP(784, 128, 10, seed=0), cfg)
    out = {'desc': 'MNIST MLP 784-128-10, fc1 + fc2 (C=100/100), 1,000 test images, shared sources, KL', 'n': 1000}
    for steps in ((20,), (0, 20, 80, 320)):
        ts = []
        for _ in range(reps if len(steps) == 1 else 1):
            t0 = time.perf_counter(); lad = adversarial_ladder(cm, x, steps, distance='kl'); ts.append(time.perf_counter() - t0)
        out[','.join(map(str, steps))] = {'seconds': med(ts), 'raw': ts, 'ladder': lad}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--reps', type=int, default=7)
    ap.add_argument('--json', default=None)
    args = ap.parse_args()
    set_threads()
    res = {'machine': machine(), 'load_start': load(), 'steps': [], 'pgd_row': PGD_ROW}
    for case in (tms_case(512), tms_case(4096), mnist_case(1024)):
        for adv in (1.0, 0.5):
            r = step_case(*case, args.reps, adv)
            res['steps'].append(r)
            print(f"{r['desc']:70s} adv_fraction {adv}: stochastic {r['stochastic_s']*1e3:7.1f} ms, persistent PGD "
                  f"{r['persistent_s']*1e3:7.1f} ms, ratio {r['ratio']:.2f}x", flush=True)
    res['ladder'] = ladder_case(3)
    for k in ('20', '0,20,80,320'):
        print(f"ladder steps ({k}) on 1,000 MNIST images: {res['ladder'][k]['seconds']:.2f} s", flush=True)
    res['load_end'] = load()
    if args.json: Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
