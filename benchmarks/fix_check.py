"""Measure the two fixes proposed in results.md (monkeypatched here, never in decomp), interleaved, same threads.

1. TMS 5-2: `MLPCI.forward` computed component-major, (C, B, h), with baddbmm/bmm, timed against decomp as it is and
   against the reference-style baseline of bench_spd.py.
2. Shapes CNN: make `Conv2dComponents.inner` contiguous.

`Conv2dComponents.inner` returns `conv(x, V).permute(0, 2, 3, 1)`, a non-contiguous view. The MLP CI function's
`addcmul` then produces a (B, H, W, C, hidden) tensor in a permuted memory layout, and `gelu_backward` on mixed layouts
(its incoming gradient is contiguous) falls off the vectorised path (about 8x slower than on contiguous tensors).
This script times decomp's shapes-CNN SPD step as it is vs. with `.contiguous()` added (monkeypatched here, not in
decomp), interleaved, same threads. Usage: python benchmarks/fix_check.py
"""
from __future__ import annotations
import copy, sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_spd import CASES, DecompSPD, build  # noqa: E402
from common import interleaved, load, med, set_threads  # noqa: E402

import torch
import torch.nn.functional as F

from bench_spd import RefSPD  # noqa: E402
from decomp.spd.components import Conv2dComponents
from decomp.spd.importance import MLPCI

orig_ci_forward = MLPCI.forward


def bmm_ci_forward(self, inner_acts, layer_input=None):
    "Component-major MLPCI (one hidden layer): baddbmm -> gelu -> bmm; same maths as MLPCI.forward."
    if len(self.hidden) != 1: return orig_ci_forward(self, inner_acts, layer_input)
    lead, C = inner_acts.shape[:-1], inner_acts.shape[-1]
    a = inner_acts.reshape(-1, C).t()[..., None]                                # (C, N, 1)
    h = F.gelu(torch.baddbmm(self.b_in[:, None, :], a, self.W_in[:, None, :]))  # (C, N, h)
    out = torch.bmm(h, self.W_out[:, :, None])[..., 0].t() + self.b_out         # (N, C)
    return out.reshape(*lead, C)


def tms():
    cm, cfg, x = build(CASES['tms_5_2'])
    a, b, ref = DecompSPD(cm, cfg), DecompSPD(copy.deepcopy(cm), cfg), RefSPD(cm, cfg)
    with torch.no_grad():  # the patched CI must give the same importances
        _, inputs = cm.forward_with_cache(x)
        lo0, _ = cm.calc_ci(inputs); MLPCI.forward = bmm_ci_forward
        lo1, _ = cm.calc_ci(inputs); MLPCI.forward = orig_ci_forward
        assert all(torch.allclose(lo0[n], lo1[n], atol=1e-5) for n in lo0)
    def as_is():
        MLPCI.forward = orig_ci_forward; a.step(x)
    def patched():
        MLPCI.forward = bmm_ci_forward; b.step(x)
    def baseline():
        MLPCI.forward = orig_ci_forward; ref.step(x)
    t = interleaved({'as_is': as_is, 'bmm_ci': patched, 'baseline': baseline}, reps=9)
    MLPCI.forward = orig_ci_forward
    ta, tb, tr = med(t['as_is']), med(t['bmm_ci']), med(t['baseline'])
    print(f"tms_5_2 decomp step: as is {ta*1e3:.1f} ms ({tr/ta:.2f}x the baseline), component-major bmm CI {tb*1e3:.1f} ms "
          f"({tr/tb:.2f}x the baseline), baseline {tr*1e3:.1f} ms; rounds {t}")

orig_inner = Conv2dComponents.inner


def contiguous_inner(self, x): return self._inner_cf(x).permute(0, 2, 3, 1).contiguous()


def main():
    set_threads()
    cm, cfg, x = build(CASES['shapes_cnn'])
    a, b = DecompSPD(cm, cfg), DecompSPD(copy.deepcopy(cm), cfg)
    def as_is():
        Conv2dComponents.inner = orig_inner; a.step(x)
    def fixed():
        Conv2dComponents.inner = contiguous_inner; b.step(x)
    print('load', load())
    tms()
    t = interleaved({'as_is': as_is, 'contiguous_inner': fixed}, reps=3)
    print(f"shapes_cnn decomp step: as is {med(t['as_is'])*1e3:.0f} ms, with contiguous inner {med(t['contiguous_inner'])*1e3:.0f} ms, "
          f"gain {med(t['as_is'])/med(t['contiguous_inner']):.2f}x; rounds {t}")
    print('load', load())


if __name__ == '__main__':
    main()
