"""decomp's SPD training step vs the reference implementation's own step (goodfire-ai/spd), side by side in one process.

The reference is imported from a checkout given on the command line (`--reference PATH`; nothing of it is copied into
this repository). Its module-level imports of wandb, wandb_workspaces, transformers and datasets are stubbed when they
are not installed (none of them runs in a training step on Linear layers); einops, jaxtyping and pydantic must be real.
It declares Python 3.13: run this script with a 3.13 interpreter that has torch, the reference's real dependencies and
decomp's (fastcore, pyyaml, safetensors) installed; decomp is imported from this checkout.

Both sides get the same target weights, the same initial components and CI functions (copied from decomp's into the
reference's), the same batches and the same loss terms and coefficients: stochastic reconstruction (all layers) 1,
layerwise stochastic reconstruction 1, importance minimality 3e-3 with p = 1, the delta component on, 1 mask sample,
continuous masks, `mlp` CI functions with hidden width 16, no faithfulness term (the delta component replaces it).
decomp step    = `SPD.loss_terms` (what `train_spd` runs) + the weighted sum + backward + AdamW.
reference step = the body of its `optimize` loop: zero_grad, `calc_weight_deltas`, the cached target forward,
                 `calc_causal_importances`, `compute_total_loss`, backward, the per-layer L0 it logs, AdamW.
Before timing, the deterministic quantities must agree: the CI values (lower and upper leaky), importance minimality
and the CI-masked reconstruction loss, in float32.

Precision: 'fp32' (no autocast on either side), 'bf16' (bfloat16 autocast on both sides: decomp's amp_dtype='bfloat16',
the reference's autocast_bf16=True) and 'default' (each side's default config: the reference autocasts to bfloat16,
decomp follows SPDConfig().amp_dtype). Timing: warm-up, then interleaved rounds A B A B (order alternating), medians;
for 1 and 2 intra-op threads. Peak memory of one step: RSS delta in a fresh subprocess per (case, side, precision).
FLOPs: torch.utils.flop_counter (matmul/conv, forward + backward); 'matmul only' replays exactly the matmul kernels of
decomp's step (same shapes, strides, dtypes) with nothing else.

Usage: python benchmarks/bench_reference.py --reference /path/to/spd [--threads 1,2] [--reps 9] [--json out.json]
"""
from __future__ import annotations
import argparse, copy, time, importlib.abc, importlib.machinery, importlib.util, json, os, subprocess, sys, types
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # decomp from this checkout
from common import count_flops, interleaved, load, machine, matmul_replay, med  # noqa: E402

from decomp.models import MLP, TMS, ShapesCNN  # noqa: E402
from decomp.spd.losses import ci_masked_recon_loss, importance_minimality_loss  # noqa: E402
from decomp.spd.model import ComponentModel  # noqa: E402
from decomp.spd.train import SPD, SPDConfig  # noqa: E402

PRECISIONS = ('fp32', 'bf16', 'default')
IMP_MIN = 3e-3


# ---------------------------------------------------------------------------------------------------------------
# importing the reference
# ---------------------------------------------------------------------------------------------------------------
_STUBBED = ('wandb', 'wandb_workspaces', 'transformers', 'datasets')


class _StubType(type):
    "Any attribute of a stub is another stub type: an nn.Module subclass that no real module is an instance of."
    def __getattr__(cls, k):
        if k.startswith('__'): raise AttributeError(k)
        v = _StubType(k, (torch.nn.Module,), {}); setattr(cls, k, v); return v
    def __or__(cls, other): return cls
    __ror__ = __or__
    def __getitem__(cls, k): return cls


class _StubModule(types.ModuleType):
    def __getattr__(self, k):
        if k.startswith('__'): raise AttributeError(k)
        v = _StubType(k, (torch.nn.Module,), {}); setattr(self, k, v); return v


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, roots): self.roots = set(roots)
    def find_spec(self, name, path, target=None):
        return importlib.machinery.ModuleSpec(name, self, is_package=True) if name.split('.')[0] in self.roots else None
    def create_module(self, spec):
        m = _StubModule(spec.name); m.__path__ = []; return m
    def exec_module(self, module): pass


def import_reference(path: str) -> types.SimpleNamespace:
    "The reference's step ingredients, imported from the checkout at `path` (missing optional packages stubbed)."
    if not (Path(path) / 'spd' / 'models' / 'component_model.py').exists():
        raise SystemExit(f"--reference {path!r} is not a goodfire-ai/spd checkout (no spd/models/component_model.py)")
    missing = [m for m in _STUBBED if importlib.util.find_spec(m) is None]
    if missing: sys.meta_path.insert(0, _StubFinder(missing))
    sys.path.insert(0, str(Path(path).resolve()))
    from spd.configs import (Config, ImportanceMinimalityLossConfig, StochasticReconLayerwiseLossConfig,
                             StochasticReconLossConfig)
    from spd.losses import compute_total_loss
    from spd.metrics import ci_masked_recon_loss as ref_ci_masked_recon_loss
    from spd.metrics import importance_minimality_loss as ref_importance_minimality_loss
    from spd.models.component_model import ComponentModel as RefComponentModel
    from spd.utils.component_utils import calc_ci_l_zero
    from spd.utils.general_utils import bf16_autocast
    from spd.utils.module_utils import ModulePathInfo
    commit = subprocess.run(['git', '-C', path, 'log', '-1', '--format=%H %s'], capture_output=True, text=True).stdout.strip()
    return types.SimpleNamespace(**locals(), stubbed=missing, autocast_default=Config.model_fields['autocast_bf16'].default)


# ---------------------------------------------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------------------------------------------
def _tms_data(B, g): return torch.rand(B, 5, generator=g) * (torch.rand(B, 5, generator=g) < 0.05)


CASES = {
    'tms_5_2': dict(desc='TMS 5-2, C = 20, batch 4096, MSE', make=lambda: TMS(5, 2, tied=False, seed=0),
                    C={'linear1': 20, 'linear2': 20}, batch=4096, distance='mse', data=_tms_data),
    'mnist_100': dict(desc='MNIST MLP 784-128-10, C = 100/100, batch 1024, KL', make=lambda: MLP(784, 128, 10, seed=0),
                      C={'fc1': 100, 'fc2': 100}, batch=1024, distance='kl', data=lambda B, g: torch.rand(B, 784, generator=g)),
    'mnist_400': dict(desc='MNIST MLP 784-128-10, C = 400/100, batch 1024, KL', make=lambda: MLP(784, 128, 10, seed=0),
                      C={'fc1': 400, 'fc2': 100}, batch=1024, distance='kl', data=lambda B, g: torch.rand(B, 784, generator=g)),
    'shapes_cnn': dict(desc='shapes CNN (3 conv + 2 fc), C = 24/48/48/64/32, batch 64, KL (decomp only: the reference has no Conv2d)',
                       make=lambda: ShapesCNN(seed=0), C={'conv1': 24, 'conv2': 48, 'conv3': 48, 'fc1': 64, 'fc2': 32},
                       batch=64, distance='kl', data=lambda B, g: torch.rand(B, 3, 32, 32, generator=g), decomp_only=True),
}


def decomp_amp(precision: str) -> str | None:
    return {'fp32': None, 'bf16': 'bfloat16', 'default': SPDConfig(target_modules=['x']).amp_dtype}[precision]


def ref_amp(R, precision: str) -> bool:
    return {'fp32': False, 'bf16': True, 'default': R.autocast_default}[precision]


class DecompStep:
    "decomp's training step: `SPD.loss_terms` + weighted sum + backward + AdamW."
    def __init__(self, case: dict, precision: str, compile: bool = False):
        self.cfg = SPDConfig(compile=compile, target_modules=case['C'], C=None, distance=case['distance'], use_delta=True, ci_fn='mlp',
                             ci_hidden=[16], amp_dtype=decomp_amp(precision), batch_size=case['batch'], device='cpu', progress=False,
                             losses={'faithfulness': {'coeff': 0.0},
                                     'stochastic_recon': {'coeff': 1.0, 'layerwise_coeff': 1.0, 'n_mask_samples': 1},
                                     'importance_minimality': {'coeff': IMP_MIN, 'p': 1.0}})
        self.cm = ComponentModel(case['make'](), self.cfg.target_modules, None, ci_fn='mlp', ci_hidden=(16,), use_delta=True, seed=0)
        self.method, self.coeffs = SPD(self.cm, self.cfg), self.cfg.coeffs()
        if compile:  # what SPD.on_fit_start does with compile=True
            for f in self.cm.ci_fns.values(): f.compile()
        self.opt = torch.optim.AdamW(self.cm.component_parameters() + self.cm.ci_parameters(), lr=self.cfg.lr, weight_decay=0.0)

    def step(self, x):
        terms = self.method.loss_terms(x, 0)
        loss = sum(self.coeffs[k] * v for k, v in terms.items())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


class RefStep:
    "The reference's training step (its `optimize` loop body) on a copy of decomp's target, components and CI functions."
    def __init__(self, R, dec: DecompStep, case: dict, precision: str):
        self.R, self.amp, self.distance = R, ref_amp(R, precision), case['distance']
        self.cm = R.RefComponentModel(copy.deepcopy(dec.cm.target), [R.ModulePathInfo(n, c) for n, c in case['C'].items()],
                                      'mlp', [16], 'leaky_hard', None)
        with torch.no_grad():
            for n in case['C']:
                a, b = dec.cm.components[n], self.cm.components[n]
                b.V.copy_(a.V); b.U.copy_(a.U)
                f, g = dec.cm.ci_fns[n], self.cm.ci_fns[n]
                g.layers[0].W.copy_(f.W_in[:, None]); g.layers[0].b.copy_(f.b_in)
                g.layers[2].W.copy_(f.W_out[..., None]); g.layers[2].b.copy_(f.b_out[:, None])
        self.losses = [R.StochasticReconLossConfig(coeff=1.0), R.StochasticReconLayerwiseLossConfig(coeff=1.0),
                       R.ImportanceMinimalityLossConfig(coeff=IMP_MIN, pnorm=1.0, beta=0.0)]
        params = [p for n in self.cm.target_module_paths for p in [*self.cm.components[n].parameters(), *self.cm.ci_fns[n].parameters()]]
        self.opt = torch.optim.AdamW(params, lr=dec.cfg.lr, weight_decay=0.0)

    def ci(self, x):
        out = self.cm(x, cache_type='input')
        return out, self.cm.calc_causal_importances(pre_weight_acts=out.cache, detach_inputs=False, sampling='continuous')

    def step(self, x):
        R = self.R
        self.opt.zero_grad()
        deltas = self.cm.calc_weight_deltas()
        with R.bf16_autocast(enabled=self.amp):
            out, ci = self.ci(x)
            total, _ = R.compute_total_loss(self.losses, self.cm, x, ci, out.output, deltas, out.cache, 0.0, 'continuous',
                                            True, 1, self.distance)
        total.backward()
        for c in ci.lower_leaky.values(): R.calc_ci_l_zero(c, 0.1)
        self.opt.step()


def check_agree(R, dec: DecompStep, ref: RefStep, x, distance: str) -> dict:
    "Max |difference| of the CI values and the relative difference of importance minimality and CI-masked recon (float32)."
    with torch.no_grad():
        target_out, inputs = dec.cm.forward_with_cache(x)
        lo, up = dec.cm.calc_ci(inputs)
        rout, rci = ref.ci(x)
        d_ci = max(max((lo[n] - rci.lower_leaky[n]).abs().max().item(), (up[n] - rci.upper_leaky[n]).abs().max().item()) for n in lo)
        im_d = importance_minimality_loss(up, p=1.0).item()
        im_r = R.ref_importance_minimality_loss(rci.upper_leaky, 0.0, 1e-12, 1.0, 0.0, 1.0, None, 1.0).item()
        cm_d = ci_masked_recon_loss(dec.cm, x, lo, target_out, distance).item()
        cm_r = R.ref_ci_masked_recon_loss(ref.cm, distance, x, rout.output, rci.lower_leaky).item()
    res = {'ci_max_abs_diff': d_ci, 'imp_min': (im_d, im_r), 'imp_min_rel_diff': abs(im_d - im_r) / abs(im_r),
           'ci_masked_recon': (cm_d, cm_r), 'ci_masked_recon_rel_diff': abs(cm_d - cm_r) / abs(cm_r)}
    if not (d_ci <= 1e-6 and res['imp_min_rel_diff'] <= 1e-6 and res['ci_masked_recon_rel_diff'] <= 1e-5):
        raise SystemExit(f"decomp and the reference disagree on a deterministic term: {res}")
    return res


def make_steps(R, name: str, precision: str):
    case = CASES[name]
    x = case['data'](case['batch'], torch.Generator().manual_seed(0))
    dec = DecompStep(case, precision)
    ref = None if case.get('decomp_only') else RefStep(R, dec, case, precision)
    return case, x, dec, ref


# ---------------------------------------------------------------------------------------------------------------
# peak memory (fresh subprocess per point)
# ---------------------------------------------------------------------------------------------------------------
def _kb(field: str) -> int:
    for line in open('/proc/self/status'):
        if line.startswith(field): return int(line.split()[1])
    raise RuntimeError(field)


def memory_worker(reference: str, name: str, side: str, precision: str):
    import gc
    torch.set_num_threads(1)
    R = import_reference(reference)
    case, x, dec, ref = make_steps(R, name, precision)
    s = dec if side == 'decomp' else ref
    if side == 'decomp': del ref
    s.step(x); s.step(x)
    gc.collect()
    before = _kb('VmRSS')
    with open('/proc/self/clear_refs', 'w') as f: f.write('5')
    s.step(x)
    print(json.dumps({'step_peak_mb': (_kb('VmHWM') - before) / 1024}))


def measure_memory(reference: str, name: str, side: str, precision: str) -> float:
    env = {**os.environ, 'MALLOC_MMAP_THRESHOLD_': '65536', 'OMP_NUM_THREADS': '1'}
    out = subprocess.run([sys.executable, __file__, '--reference', reference, '--memory-worker', name, side, precision],
                         env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])['step_peak_mb']


# ---------------------------------------------------------------------------------------------------------------
def time_case(R, name: str, threads: list[int], reps: int, inner: int, precisions, compiled) -> dict:
    built = {p: make_steps(R, name, p) for p in precisions}
    case, x, dec, ref = built['fp32']
    res = {'case': name, 'desc': case['desc'], 'batch': case['batch'], 'decomp_only': ref is None}
    if ref is not None: res['agree'] = check_agree(R, dec, ref, x, case['distance'])
    fns = {}
    for p, (_, xp, d, r) in built.items():
        fns[f'decomp_{p}'] = lambda d=d, xp=xp: d.step(xp)
        if r is not None: fns[f'reference_{p}'] = lambda r=r, xp=xp: r.step(xp)
    for p in compiled:  # decomp with SPDConfig(compile=True): the CI functions torch.compiled
        d = DecompStep(CASES[name], p, compile=True)
        t0 = time.perf_counter(); d.step(x); res[f'compile_s_{p}'] = time.perf_counter() - t0
        fns[f'decomp_{p}_compiled'] = lambda d=d: d.step(x)
    for p in ('fp32', 'bf16'):
        if p in built:
            _, xp, d, r = built[p]
            d.step(xp)  # past the first-step checks
            res[f'decomp_gflop_{p}'] = count_flops(lambda: d.step(xp)) / 1e9
            if r is not None: res[f'reference_gflop_{p}'] = count_flops(lambda: r.step(xp)) / 1e9
            fns[f'matmul_{p}'], res[f'matmul_calls_{p}'] = matmul_replay(lambda: d.step(xp))
    res['threads'] = {}
    for t in threads:
        torch.set_num_threads(t)
        times = interleaved(fns, reps=reps, inner=inner, warmup=2)
        res['threads'][str(t)] = {'median_s': {k: med(v) for k, v in times.items()}, 'min_s': {k: min(v) for k, v in times.items()},
                                  'raw': times, 'load': load()}
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--reference', required=True, help='a goodfire-ai/spd checkout')
    ap.add_argument('--cases', default=','.join(CASES))
    ap.add_argument('--threads', default='1,2')
    ap.add_argument('--reps', type=int, default=9)
    ap.add_argument('--inner', type=int, default=3, help='steps per timed call (the shapes CNN: 1)')
    ap.add_argument('--precisions', default=','.join(PRECISIONS))
    ap.add_argument('--compiled', default='fp32,bf16', help="precisions also timed with the CI functions torch.compiled (decomp)")
    ap.add_argument('--memory', default='fp32,default', help="precisions whose peak memory is measured ('' = none)")
    ap.add_argument('--json', default=None)
    ap.add_argument('--memory-worker', nargs=3, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_worker: return memory_worker(args.reference, *args.memory_worker)
    R = import_reference(args.reference)
    threads = [int(t) for t in args.threads.split(',')]
    precisions = [p for p in args.precisions.split(',') if p]
    out = {'machine': machine(), 'reference': {'path': args.reference, 'commit': R.commit, 'stubbed': R.stubbed,
                                               'autocast_default': R.autocast_default},
           'decomp_default_amp': decomp_amp('default'), 'load_start': load(), 'results': []}
    for name in args.cases.split(','):
        r = time_case(R, name, threads, args.reps, 1 if name == 'shapes_cnn' else args.inner, precisions,
                      [p for p in args.compiled.split(',') if p])
        r['memory_mb'] = {f'{side}_{p}': measure_memory(args.reference, name, side, p)
                          for p in [m for m in args.memory.split(',') if m] for side in ('decomp', 'reference')
                          if side == 'decomp' or not r['decomp_only']}
        out['results'].append(r)
        for t, v in r['threads'].items():
            m = v['median_s']
            line = ' | '.join(f"{p}: {m[f'decomp_{p}']*1e3:.1f}" + (f" / {m[f'reference_{p}']*1e3:.1f} = "
                                                                     f"{m[f'reference_{p}']/m[f'decomp_{p}']:.2f}x" if f'reference_{p}' in m else '')
                              for p in precisions)
            mm = ' '.join(f"{k} {m[k]*1e3:.1f}" for k in m if k.startswith('matmul') or k.endswith('compiled'))
            print(f"{name:10s} {t} thr  ms decomp / reference  {line} | {mm}", flush=True)
        print(f"{name:10s} memory MB {r['memory_mb']}", (f"agree {r['agree']}" if 'agree' in r else ''), flush=True)
    out['load_end'] = load()
    if args.json: Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == '__main__':
    main()
