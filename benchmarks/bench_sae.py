"""BatchTopK SAE (and transcoder) training step vs one dense matmul and vs a straightforward dense implementation.

Shapes: d_in 784 (MNIST pixels), dictionary 4096, batch 4096, k 32. The yardstick is one dense
(4096 x 784) @ (784 x 4096) matmul timed in the same run with the same threads.

decomp step   = what `train_sae` runs per step: `sae(x, dead_mask=...)` (BatchTopK selection without a full sort,
                sparse decode, sparse encoder-weight gradient), `update_activity`, backward, decoder-gradient
                projection, fused Adam, decoder renormalisation.
dense baseline = the BatchTopK-repo recipe: dense pre-activations, ReLU, `topk` over the flattened batch x dict
                (a full selection of k * batch out of 16.8 M values), dense scatter, dense decoder matmul, dense
                autograd gradients, the same projection, the same fused Adam and the same renormalisation.
The script checks that both produce the same reconstruction on the first batch before timing.
repo step      = with `--batchtopk PATH` (a checkout of bartbussmann/BatchTopK outside this repository; nothing of it is
                copied here): its own `BatchTopKSAE` (sae.py) and the body of its `train_sae` loop (training.py): forward,
                loss.backward(), clip_grad_norm_, make_decoder_weights_and_grad_unit_norm, Adam step, zero_grad; config
                784 -> 4096, top_k 32, top_k_aux 392 (decomp's d_in // 2), aux_penalty 1/32, no input normalisation, float32.
                Timed with no dead feature and with half of the dictionary dead (its aux loss active), interleaved with
                decomp's step and the matmul. Its aux codes are ReLU'd pre-activations where decomp's are raw ones.

Usage: python benchmarks/bench_sae.py [--batchtopk PATH] [--json out.json]
"""
from __future__ import annotations
import argparse, json, sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import count_flops, interleaved, load, machine, med, set_threads  # noqa: E402

from decomp.sae.variants import BatchTopKSAE

try:
    from decomp.sae.transcoder import transcoder
except ImportError:  # the transcoder module is optional for this benchmark
    transcoder = None

D_IN, N_FEAT, BATCH, K, D_TC_OUT = 784, 4096, 4096, 32, 128


def adam(params):
    params = list(params)
    try: return torch.optim.Adam(params, lr=1e-4, fused=True)
    except (RuntimeError, ValueError, TypeError): return torch.optim.Adam(params, lr=1e-4)


class DecompStep:
    def __init__(self, sae, dead_after: int = 100_000):
        self.sae, self.opt, self.dead_after = sae.train(), adam(sae.parameters()), dead_after
        self.coeffs = dict(sae.default_coeffs)

    def __call__(self, x, y=None):
        sae = self.sae
        out = sae(x, y, dead_mask=sae.dead_mask(self.dead_after))
        sae.update_activity(out.codes)
        loss = sum(self.coeffs.get(k, 1.0) * v for k, v in out.terms.items())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        sae.project_decoder_grad()
        self.opt.step()
        sae.post_step()
        return out


class DenseStep:
    "BatchTopK the straightforward way, on copies of the SAE's initial parameters."
    def __init__(self, sae):
        self.W_enc, self.b_enc, self.W_dec, self.b_dec = (torch.nn.Parameter(p.detach().clone()) for p in
                                                          (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec))
        self.sub_b_dec, self.k = sae.apply_b_dec_to_input, sae.k
        self.opt = adam([self.W_enc, self.b_enc, self.W_dec, self.b_dec])

    def forward(self, x):
        h = x - self.b_dec if self.sub_b_dec else x
        acts = F.relu(h @ self.W_enc + self.b_enc)                      # (B, n) dense
        flat = acts.flatten()
        top = flat.topk(self.k * x.shape[0], dim=-1)                    # full selection over B * n values
        codes = torch.zeros_like(flat).scatter(-1, top.indices, top.values).reshape(acts.shape)
        return codes @ self.W_dec + self.b_dec                          # dense decode

    def __call__(self, x, y=None):
        y = x if y is None else y
        recon = self.forward(x)
        loss = (recon - y).pow(2).sum(-1).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            g, w = self.W_dec.grad, self.W_dec
            g.sub_((g * w).sum(1, keepdim=True) * w)
        self.opt.step()
        with torch.no_grad(): self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True))
        return recon


def data():
    "MNIST training pixels (the bundled copy) when available, else uniform noise of the same shape."
    try:
        from decomp.data import load_mnist
        x = load_mnist().x_train[:BATCH].reshape(BATCH, D_IN).float()
        src = 'MNIST training pixels'
    except Exception as e:  # noqa: BLE001 - a benchmark can run without the data set
        x, src = torch.rand(BATCH, D_IN, generator=torch.Generator().manual_seed(0)), f'uniform noise ({type(e).__name__})'
    return x, src


def bench(name, sae, x, y, reps):
    dec, dense = DecompStep(sae), DenseStep(sae)
    with torch.no_grad():  # same reconstruction before any step (eval-free: both in training selection mode)
        r_dec = sae(x, y).recon
        r_dense = dense.forward(x)
    err = (r_dec - r_dense).abs().max().item()
    assert err < 1e-3 * max(1.0, r_dense.abs().max().item()), f'{name}: decomp and dense reconstructions differ by {err}'
    A = torch.randn(BATCH, D_IN); Bm = torch.randn(D_IN, N_FEAT)
    t = interleaved({'matmul': lambda: A @ Bm, 'decomp': lambda: dec(x, y), 'dense': lambda: dense(x, y)}, reps=reps)
    tm, td, tb = med(t['matmul']), med(t['decomp']), med(t['dense'])
    fl = count_flops(lambda: dense(x, y))
    return {'name': name, 'matmul_s': tm, 'decomp_s': td, 'dense_s': tb, 'decomp_over_matmul': td / tm,
            'dense_over_matmul': tb / tm, 'speedup': tb / td, 'matmul_gflops': 2 * BATCH * D_IN * N_FEAT / tm / 1e9,
            'dense_step_gflop': fl / 1e9, 'decomp_steps_s': 1 / td, 'decomp_samples_s': BATCH / td,
            'dense_steps_s': 1 / tb, 'recon_max_abs_diff': err, 'raw': t}


class RepoStep:
    "The BatchTopK repo's own step (the body of its train_sae loop) on its own BatchTopKSAE, started from decomp's weights."
    def __init__(self, mod, sae, n_dead: int = 0):
        self.cfg = {'seed': 0, 'act_size': D_IN, 'dict_size': N_FEAT, 'top_k': K, 'top_k_aux': D_IN // 2, 'aux_penalty': 1 / 32,
                    'l1_coeff': 0, 'n_batches_to_dead': 5, 'input_unit_norm': False, 'dtype': torch.float32, 'device': 'cpu',
                    'lr': 3e-4, 'beta1': 0.9, 'beta2': 0.99, 'max_grad_norm': 100000}
        self.sae = mod.BatchTopKSAE(self.cfg)
        with torch.no_grad():
            for n in ('W_enc', 'b_enc', 'W_dec', 'b_dec'): getattr(self.sae, n).copy_(getattr(sae, n))
            if n_dead:  # its forward has no b_enc: zero encoder columns keep the dead half silent (same live codes as decomp's)
                self.sae.W_enc[:, N_FEAT - n_dead:] = 0.0
                self.sae.num_batches_not_active[N_FEAT - n_dead:] = 10 ** 9
        self.opt = torch.optim.Adam(self.sae.parameters(), lr=self.cfg['lr'], betas=(self.cfg['beta1'], self.cfg['beta2']))

    def __call__(self, x):
        out = self.sae(x)
        out['loss'].backward()
        torch.nn.utils.clip_grad_norm_(self.sae.parameters(), self.cfg['max_grad_norm'])
        self.sae.make_decoder_weights_and_grad_unit_norm()
        self.opt.step()
        self.opt.zero_grad()
        return out


def import_batchtopk(path: str):
    "The BatchTopK repo's sae.py from a checkout at `path` (imported under another name; it needs only torch)."
    import importlib.util, subprocess
    f = Path(path) / 'sae.py'
    if not f.exists(): raise SystemExit(f"--batchtopk {path!r} is not a bartbussmann/BatchTopK checkout (no sae.py)")
    spec = importlib.util.spec_from_file_location('batchtopk_repo_sae', f)
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    mod.commit = subprocess.run(['git', '-C', path, 'log', '-1', '--format=%H %s'], capture_output=True, text=True).stdout.strip()
    return mod


def bench_repo(mod, sae, x, reps, n_dead: int):
    "decomp's step vs the repo's own step from the same weights (n_dead of the last features dead on both sides), and the matmul."
    dec, repo = DecompStep(sae), RepoStep(mod, sae, n_dead)
    with torch.no_grad(): err = (sae(x).recon - repo.sae(x)['sae_out']).abs().max().item()
    A = torch.randn(BATCH, D_IN); Bm = torch.randn(D_IN, N_FEAT)
    t = interleaved({'matmul': lambda: A @ Bm, 'decomp': lambda: dec(x), 'repo': lambda: repo(x)}, reps=reps)
    tm, td, tr = med(t['matmul']), med(t['decomp']), med(t['repo'])
    return {'n_dead': n_dead, 'matmul_s': tm, 'decomp_s': td, 'repo_s': tr, 'decomp_over_matmul': td / tm,
            'repo_over_matmul': tr / tm, 'speedup': tr / td, 'recon_max_abs_diff': err, 'raw': t}


def make_half_dead(sae):
    "Kill the last half of the dictionary: never selected (b_enc -10) and counted dead."
    n_dead = N_FEAT // 2
    with torch.no_grad(): sae.b_enc[n_dead:] = -10.0
    sae.samples_since_fired[n_dead:] = 10 ** 9
    return n_dead


def bench_dead(sae, x, reps):
    "Half the dictionary dead (AuxK active, k_aux = d_in // 2 of 2048 dead: density 0.19): decomp's step as it chooses the AuxK path, and forced sparse."
    import decomp.sae.base as base
    n_dead = make_half_dead(sae)
    dec = DecompStep(sae)
    def forced_sparse():
        saved, base.AUXK_DENSE_FROM = base.AUXK_DENSE_FROM, float('inf')
        try: dec(x)
        finally: base.AUXK_DENSE_FROM = saved
    A = torch.randn(BATCH, D_IN); Bm = torch.randn(D_IN, N_FEAT)
    t = interleaved({'matmul': lambda: A @ Bm, 'decomp': lambda: dec(x), 'decomp_sparse_auxk': forced_sparse}, reps=reps)
    tm = med(t['matmul'])
    k_aux = D_IN // 2
    return {'name': 'batchtopk_sae_half_dead', 'n_dead': n_dead, 'k_aux': k_aux, 'density': k_aux / n_dead,
            'dense_from': base.AUXK_DENSE_FROM, 'matmul_s': tm, 'decomp_s': med(t['decomp']),
            'decomp_sparse_auxk_s': med(t['decomp_sparse_auxk']), 'decomp_over_matmul': med(t['decomp']) / tm,
            'sparse_auxk_over_matmul': med(t['decomp_sparse_auxk']) / tm, 'raw': t}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--reps', type=int, default=5)
    ap.add_argument('--json', default=None)
    ap.add_argument('--batchtopk', default=None, help='a bartbussmann/BatchTopK checkout: also time its own step')
    ap.add_argument('--only-repo', action='store_true', help='only the repo comparison (with --batchtopk)')
    args = ap.parse_args()
    set_threads()
    x, src = data()
    res = {'machine': machine(), 'load_start': load(), 'data': src, 'results': []}
    if args.batchtopk:
        mod = import_batchtopk(args.batchtopk)
        res['repo'] = {'commit': mod.commit}
        for label, dead in (('no_dead', False), ('half_dead', True)):
            s = BatchTopKSAE(D_IN, N_FEAT, K, seed=0)
            with torch.no_grad(): s.b_dec.copy_(x.mean(0))
            res['repo'][label] = r = bench_repo(mod, s, x, args.reps, make_half_dead(s) if dead else 0)
            print(f"BatchTopK repo, {label}: matmul {r['matmul_s']*1e3:.1f} ms | decomp {r['decomp_s']*1e3:.1f} ms = {r['decomp_over_matmul']:.2f}x | "
                  f"repo {r['repo_s']*1e3:.1f} ms = {r['repo_over_matmul']:.2f}x | decomp {r['speedup']:.2f}x faster", flush=True)
        if args.only_repo:
            if args.json: Path(args.json).write_text(json.dumps(res, indent=1))
            return
    sae = BatchTopKSAE(D_IN, N_FEAT, K, seed=0)
    with torch.no_grad(): sae.b_dec.copy_(x.mean(0))  # as train_sae's b_dec init would (mean)
    res['results'].append(bench('batchtopk_sae', sae, x, None, args.reps))
    if transcoder is not None:
        y = torch.relu(x @ torch.randn(D_IN, D_TC_OUT, generator=torch.Generator().manual_seed(1)) / D_IN ** 0.5)
        tc = transcoder('batchtopk', D_IN, D_TC_OUT, N_FEAT, k=K, seed=0)
        with torch.no_grad(): tc.b_dec.copy_(y.mean(0))
        res['results'].append(bench('batchtopk_transcoder', tc, x, y, args.reps))
    dead_sae = BatchTopKSAE(D_IN, N_FEAT, K, seed=0)
    with torch.no_grad(): dead_sae.b_dec.copy_(x.mean(0))
    res['half_dead'] = hd = bench_dead(dead_sae, x, args.reps)
    print(f"half dead (AuxK, density {hd['density']:.2f}): matmul {hd['matmul_s']*1e3:.1f} ms | decomp {hd['decomp_s']*1e3:.1f} ms = "
          f"{hd['decomp_over_matmul']:.2f}x | forced sparse AuxK {hd['decomp_sparse_auxk_s']*1e3:.1f} ms = {hd['sparse_auxk_over_matmul']:.2f}x", flush=True)
    for r in res['results']:
        print(f"{r['name']:21s} matmul {r['matmul_s']*1e3:7.1f} ms | decomp {r['decomp_s']*1e3:7.1f} ms = {r['decomp_over_matmul']:5.2f}x matmul | "
              f"dense {r['dense_s']*1e3:7.1f} ms = {r['dense_over_matmul']:5.2f}x matmul | speedup {r['speedup']:4.2f}x", flush=True)
    res['load_end'] = load()
    if args.json: Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
