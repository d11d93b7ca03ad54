"""CUDA paths end to end, for a machine with a GPU: `python tools/cuda_check.py` (or `--device cpu` to try the script here).

1. SPD on TMS 5-2 (float32, bfloat16 autocast, torch.compile): the features are recovered on the device;
2. every SAE variant and a transcoder train on the device, and a checkpoint loads back to the same reconstruction;
3. the four experiments of the `decomp` command run end to end with few steps (`--device`);
4. with 2+ GPUs: `torchrun --nproc_per_node=2` (NCCL) trains SPD on TMS to the single-GPU result.
Prints one PASS/FAIL line per check and ends with `N passed, N failed`."""
from __future__ import annotations
import argparse, os, subprocess, sys, tempfile, time, traceback
from pathlib import Path

import torch

from decomp.distributed import launch

ROOT = Path(__file__).resolve().parents[1]
TMS_RUN = r'''
import sys, torch
from decomp.data import sparse_features
from decomp.models import load_or_train_tms
from decomp.spd.train import train_spd
from decomp.experiments.tms import tms_recovery, tms_spd_config
from decomp.distributed import is_main_process
out, device, extra = sys.argv[1], sys.argv[2], eval(sys.argv[3])
tms, _ = load_or_train_tms(progress=False)
cfg = tms_spd_config(log_every=100, device=device, **extra)
spd, hist = train_spd(tms, lambda n, g: sparse_features(n, 5, p=0.05, generator=g), cfg)
if is_main_process(): torch.save({'recovery': tms_recovery(spd), 'state': {k: v.cpu() for k, v in spd.spd_state_dict().items()}}, out)
'''


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, **kw)
    if r.returncode: raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{r.stderr[-3000:]}")
    return r


def tms(d: Path, device: str, extra: str = '{}', nproc: int = 1) -> dict:
    script, out = d / 'tms.py', d / f'tms_{nproc}_{abs(hash(extra))}.pt'
    script.write_text(TMS_RUN)
    launch(script, out, device, extra, nproc=nproc, threads=torch.get_num_threads())
    return torch.load(out, weights_only=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default='cuda')
    ap.add_argument('--steps', type=int, default=100, help='steps of each experiment run')
    a = ap.parse_args()
    if a.device.startswith('cuda') and not torch.cuda.is_available(): sys.exit('cuda_check: no CUDA device here; use --device cpu to try the script')
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        def check(name, fn):
            t0 = time.time()
            try: msg = fn(); results[name] = True; print(f'PASS {name} ({time.time() - t0:.0f} s) {msg or ""}', flush=True)
            except Exception: results[name] = False; print(f'FAIL {name}\n{traceback.format_exc()}', flush=True)

        def spd_variant(extra):
            def f():
                r = tms(d, a.device, extra)['recovery']
                assert r['mmcs'] > 0.99 and r['n_significant'] == 5, r
                return f"MMCS {r['mmcs']:.4f}, {r['n_significant']} significant components"
            return f
        check('SPD on TMS 5-2, float32', spd_variant('{}'))
        check('SPD on TMS 5-2, bfloat16 autocast', spd_variant("{'amp_dtype': 'bfloat16'}"))
        check('SPD on TMS 5-2, torch.compile', spd_variant("{'compile': True}"))

        def saes():
            from decomp.data import ToyDictionary
            from decomp.sae.base import SAE, SAEConfig, load_sae, save_sae, train_sae
            from decomp.sae.variants import AbsTopKSAE, BatchTopKSAE, JumpReLUSAE, StochasticSAE, TopKSAE
            from decomp.sae.transcoder import transcoder
            x, _ = ToyDictionary(64, 32, k=3, seed=0).sample(8192)
            y = x[:, :16] * 2
            cfg = SAEConfig(steps=300, batch_size=512, lr=3e-3, progress=False, device=a.device)
            models = {'relu': (SAE(32, 128, device=a.device), x), 'topk': (TopKSAE(32, 128, 3, device=a.device), x),
                      'batchtopk': (BatchTopKSAE(32, 128, 3, device=a.device), x), 'jumprelu': (JumpReLUSAE(32, 128, device=a.device), x),
                      'abstopk': (AbsTopKSAE(32, 128, 3, device=a.device), x), 'stochastic': (StochasticSAE(32, 128, device=a.device), x),
                      'transcoder': (transcoder('batchtopk', 32, 16, 128, k=3, device=a.device), (x, y))}
            for name, (sae, data) in models.items():
                sae, h = train_sae(sae, data, cfg)
                back, _, _ = load_sae(save_sae(sae, d / name), map_location=a.device)
                b = tuple(t[:256].to(a.device) for t in (data if isinstance(data, tuple) else (data,)))
                with torch.no_grad(): assert torch.allclose(back.eval()(*b).recon, sae.eval()(*b).recon, atol=1e-5), name
                assert h.last('fvu') < 0.5, (name, h.last('fvu'))
            return f'{len(models)} models'
        check('SAE variants and transcoder', saes)

        for exp in ('mnist', 'shapes', 'tms', 'transcoder_vs_spd'):
            steps = max(a.steps, 150) if exp == 'shapes' else a.steps  # shapes: 100 warm-up steps come first
            check(f'decomp {exp} --device {a.device} --steps {steps}',
                  lambda exp=exp, steps=steps: run([str(Path(sys.executable).parent / 'decomp'), exp, '--device', a.device, '--steps',
                                                    str(steps), '--out', str(d / exp), '--quiet']).stdout.splitlines()[0])

        if a.device.startswith('cuda') and torch.cuda.device_count() >= 2:
            def nccl():
                one, two = tms(d, 'cuda', '{}'), tms(d, 'cuda', '{}', nproc=2)
                diff = max((one['state'][k] - two['state'][k]).abs().max().item() for k in one['state'])
                assert two['recovery']['n_significant'] == 5 and diff < 1e-3, (two['recovery'], diff)
                return f'max parameter difference 1 vs 2 GPUs {diff:.1e}'
            check('torchrun --nproc_per_node=2 (NCCL), SPD on TMS 5-2', nccl)
    n_ok = sum(results.values())
    print(f'{n_ok} passed, {len(results) - n_ok} failed')
    sys.exit(0 if n_ok == len(results) else 1)


if __name__ == '__main__':
    main()
