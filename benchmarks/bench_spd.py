"""SPD training step: decomp vs a reference-style baseline, and vs torch's matmul throughput on the same shapes.

decomp step  = `spd_loss_terms` (one target forward with a cache, CI once for every layer vectorised over
               components, all stochastic-recon variants (all layers + each layer alone) in ONE batched forward)
               + backward + AdamW step.
baseline step = the same four loss terms computed the straightforward way: forward hooks to cache layer inputs,
               per-layer Python loops, a per-component Python loop inside the CI function, the CI recomputed
               (with a fresh hooked target forward) for every loss term, one masked forward per mask sample and
               per layer, and the frozen target's output recomputed for every mask sample; + backward + AdamW.
Both start from identical parameters (the baseline runs on a deep copy) and the script checks that they agree
on the deterministic terms (faithfulness, importance minimality) before timing.

Usage: python benchmarks/bench_spd.py [--quick] [--json out.json]
"""
from __future__ import annotations
import argparse, copy, json, sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import count_flops, interleaved, load, machine, matmul_replay, med, set_threads  # noqa: E402

from decomp.models import MLP, TMS, ShapesCNN
from decomp.spd.components import Conv2dComponents
from decomp.spd.importance import lower_leaky_hard_sigmoid, upper_leaky_hard_sigmoid
from decomp.spd.model import ComponentModel
from decomp.spd.train import SPDConfig, spd_loss_terms


# ---------------------------------------------------------------------------------------------------------------
# the reference-style baseline
# ---------------------------------------------------------------------------------------------------------------
class RefSPD:
    "Straightforward SPD step on a deep copy of a ComponentModel's parameters (MLP CI functions)."
    def __init__(self, cm: ComponentModel, config: SPDConfig, seed: int = 1):
        self.cm = copy.deepcopy(cm)
        self.target, self.names, self.cfg = self.cm.target, self.cm.module_names, config
        self.comps, self.cis = self.cm.components, self.cm.ci_fns
        self.opt = torch.optim.AdamW([{'params': self.cm.component_parameters(), 'weight_decay': 0.0},
                                      {'params': self.cm.ci_parameters(), 'weight_decay': 0.0}], lr=config.lr)
        self.gen = torch.Generator().manual_seed(seed)

    def cached_inputs(self, x):
        "Target output and layer inputs via forward hooks."
        cache, handles = {}, []
        for n in self.names:
            handles.append(self.target.get_submodule(n).register_forward_hook(
                lambda mod, args, out, n=n: cache.__setitem__(n, args[0])))
        with torch.no_grad(): out = self.target(x)
        for h in handles: h.remove()
        return out, cache

    def inner(self, n, x):
        comp = self.comps[n]
        if isinstance(comp, Conv2dComponents):
            k = comp.V.T.reshape(comp.C, comp.in_ch, *comp.kernel_size)
            return F.conv2d(x, k, None, comp.stride, comp.padding, comp.dilation).permute(0, 2, 3, 1)
        return x @ comp.V

    def ci(self, x):
        "(lower, upper) importances, recomputed from scratch: hooked target forward, per layer, per component."
        _, cache = self.cached_inputs(x)
        lo, up = {}, {}
        for n in self.names:
            inner, f = self.inner(n, cache[n]), self.cis[n]
            pres = []
            for c in range(self.cm.C[n]):  # one small MLP per component: 1 -> hidden -> 1
                h = F.gelu(inner[..., c:c + 1] * f.W_in[c] + f.b_in[c])
                pres.append(h @ f.W_out[c] + f.b_out[c])
            pre = torch.stack(pres, -1)
            lo[n], up[n] = lower_leaky_hard_sigmoid(pre, self.cm.alpha), upper_leaky_hard_sigmoid(pre, self.cm.alpha)
        return lo, up

    def comp_forward(self, n, x, mask):
        comp = self.comps[n]
        a = self.inner(n, x) * mask
        if isinstance(comp, Conv2dComponents): return F.conv2d(a.permute(0, 3, 1, 2), comp.U.T[:, :, None, None], comp.bias)
        out = a @ comp.U
        return out if comp.bias is None else out + comp.bias

    def masked_forward(self, x, masks):
        "Target forward with forward hooks replacing the outputs of the masked layers."
        handles = [self.target.get_submodule(n).register_forward_hook(
            lambda mod, args, out, n=n: self.comp_forward(n, args[0], masks[n])) for n in masks]
        out = self.target(x)
        for h in handles: h.remove()
        return out

    def distance(self, pred, tgt):
        if self.cfg.distance == 'mse': return (pred - tgt).pow(2).mean()
        logq, logp = F.log_softmax(pred, -1), F.log_softmax(tgt, -1)
        return (logp.exp() * (logp - logq)).sum(-1).mean()

    def mask(self, ci):
        return ci + (1 - ci) * torch.rand(ci.shape, generator=self.gen)

    def faithfulness(self):
        ds = [self.cm.target_weight(n) - self.comps[n].weight for n in self.names]
        return sum(d.pow(2).sum() for d in ds) / sum(d.numel() for d in ds)

    def imp_min(self, x):
        _, up = self.ci(x)  # CI recomputed for this term
        return sum((g + self.cfg.losses['importance_minimality'].eps).pow(self.cfg.losses['importance_minimality'].p).flatten(0, -2).mean(0).sum() for g in up.values())

    def terms(self, x):
        S, t = self.cfg.losses['stochastic_recon'].n_mask_samples, {}
        t['faithfulness'] = self.faithfulness()
        lo, _ = self.ci(x)  # CI for the all-layer term
        rec = 0.0
        for _ in range(S):  # one forward per mask sample, target recomputed each time
            with torch.no_grad(): tgt = self.target(x)
            rec = rec + self.distance(self.masked_forward(x, {n: self.mask(lo[n]) for n in self.names}), tgt)
        t['stochastic_recon'] = rec / S
        lo, _ = self.ci(x)  # CI recomputed for the layerwise term
        rec = 0.0
        for _ in range(S):
            for n in self.names:  # one forward per layer per mask sample
                with torch.no_grad(): tgt = self.target(x)
                rec = rec + self.distance(self.masked_forward(x, {n: self.mask(lo[n])}), tgt)
        t['stochastic_recon_layerwise'] = rec / (S * len(self.names))
        t['importance_minimality'] = self.imp_min(x)
        return t

    def step(self, x):
        c = self.cfg.coeffs()
        loss = sum(c[k] * v for k, v in self.terms(x).items())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


# ---------------------------------------------------------------------------------------------------------------
# decomp's step (what train_spd runs per step, minus logging)
# ---------------------------------------------------------------------------------------------------------------
class DecompSPD:
    def __init__(self, cm: ComponentModel, config: SPDConfig, seed: int = 1):
        self.cm, self.cfg = cm, config
        self.opt = torch.optim.AdamW([{'params': cm.component_parameters(), 'weight_decay': 0.0},
                                      {'params': cm.ci_parameters(), 'weight_decay': 0.0}], lr=config.lr)
        self.gen, self.coeffs = torch.Generator().manual_seed(seed), config.coeffs()

    def terms(self, x): return spd_loss_terms(self.cm, x, self.cfg, 0, self.gen)

    def step(self, x):
        loss = sum(self.coeffs[k] * v for k, v in self.terms(x).items())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


# ---------------------------------------------------------------------------------------------------------------
CASES = {
    'tms_5_2': dict(desc='TMS 5-2, linear1+linear2, C=20, batch 4096, MSE', batch=4096,
                    make=lambda: TMS(5, 2, seed=0), modules=['linear1', 'linear2'], C=20, distance='mse', p=1.0,
                    data=lambda B, g: torch.rand(B, 5, generator=g) * (torch.rand(B, 5, generator=g) < 0.05)),
    'tms_40_10': dict(desc='TMS 40-10, linear1+linear2, C=200, batch 4096, MSE', batch=4096,
                      make=lambda: TMS(40, 10, seed=0), modules=['linear1', 'linear2'], C=200, distance='mse', p=2.0,
                      data=lambda B, g: torch.rand(B, 40, generator=g) * (torch.rand(B, 40, generator=g) < 0.05)),
    'mnist_mlp': dict(desc='MNIST MLP 784-128-10, fc1 (C=200) + fc2 (C=100), batch 1024, KL', batch=1024,
                      make=lambda: MLP(784, 128, 10, seed=0), modules={'fc1': 200, 'fc2': 100}, C=None, distance='kl',
                      p=1.0, data=lambda B, g: torch.rand(B, 784, generator=g)),
    'shapes_cnn': dict(desc='shapes CNN (3 conv + 2 fc), C = 24/48/48/64/32, batch 64, KL', batch=64,
                       make=lambda: ShapesCNN(seed=0),
                       modules={'conv1': 24, 'conv2': 48, 'conv3': 48, 'fc1': 64, 'fc2': 32}, C=None, distance='kl',
                       p=1.0, data=lambda B, g: torch.rand(B, 3, 32, 32, generator=g)),
}


def build(case: dict, batch: int | None = None, C=None):
    cfg = SPDConfig(target_modules=case['modules'], C=case['C'] if C is None else C, distance=case['distance'],
                    losses={'importance_minimality': {'p': case['p']}, 'stochastic_recon': {'n_mask_samples': 1}},
                    batch_size=batch or case['batch'], progress=False, device='cpu')
    cm = ComponentModel(case['make'](), cfg.target_modules, cfg.C, ci_fn='mlp', ci_hidden=(16,), seed=0)
    x = case['data'](cfg.batch_size, torch.Generator().manual_seed(0))
    return cm, cfg, x


def check_agree(dec: DecompSPD, ref: RefSPD, x):
    "The deterministic terms must agree before timing means anything."
    with torch.no_grad():
        td, tr = dec.terms(x), ref.terms(x)
    for k in ('faithfulness', 'importance_minimality'):
        a, b = float(td[k]), float(tr[k])
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), f'{k}: decomp {a} vs baseline {b}'
    return {k: (float(td[k]), float(tr[k])) for k in td}


def run_case(name: str, reps: int, inner: int) -> dict:
    case = CASES[name]
    cm, cfg, x = build(case)
    dec, ref = DecompSPD(cm, cfg), RefSPD(cm, cfg)
    agree = check_agree(dec, ref, x)
    # FLOPs, and the matmul roofline of the same shapes: the step's matmul/conv kernels replayed alone, timed in the same
    # interleaved rounds as the two steps so that all three see the same machine load
    fd, fr = count_flops(lambda: dec.step(x)), count_flops(lambda: ref.step(x))
    replay, n_calls = matmul_replay(lambda: dec.step(x))
    times = interleaved({'decomp': lambda: dec.step(x), 'baseline': lambda: ref.step(x), 'replay': replay}, reps=reps, inner=inner)
    mm = times.pop('replay')
    td, tb, tm = med(times['decomp']), med(times['baseline']), med(mm)
    B = cfg.batch_size
    return {'case': name, 'desc': case['desc'], 'batch': B, 'agree': agree,
            'decomp_s': td, 'baseline_s': tb, 'speedup': tb / td,
            'decomp_steps_s': 1 / td, 'baseline_steps_s': 1 / tb,
            'decomp_samples_s': B / td, 'baseline_samples_s': B / tb,
            'decomp_gflop': fd / 1e9, 'baseline_gflop': fr / 1e9,
            'decomp_gflops': fd / td / 1e9, 'baseline_gflops': fr / tb / 1e9,
            'matmul_gflops_same_shapes': fd / tm / 1e9, 'matmul_s': tm, 'matmul_calls': n_calls,
            'frac_of_matmul': tm / td, 'raw': {**times, 'matmul': mm}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--cases', default=','.join(CASES))
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--json', default=None)
    args = ap.parse_args()
    set_threads()
    res = {'machine': machine(), 'load_start': load(), 'results': []}
    for name in args.cases.split(','):
        reps = args.reps if name in ('tms_5_2', 'mnist_mlp') else max(3, args.reps - 2)  # the slow cases get fewer rounds
        r = run_case(name, reps, 1)
        res['results'].append(r)
        print(f"{name:11s} decomp {r['decomp_s']*1e3:8.1f} ms ({r['decomp_steps_s']:6.1f} steps/s, {r['decomp_samples_s']:9.0f} samples/s) | "
              f"baseline {r['baseline_s']*1e3:8.1f} ms | speedup {r['speedup']:5.2f}x | decomp {r['decomp_gflops']:6.2f} GFLOP/s vs "
              f"matmul on same shapes {r['matmul_gflops_same_shapes']:6.2f} GFLOP/s", flush=True)
    res['load_end'] = load()
    if args.json: Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
