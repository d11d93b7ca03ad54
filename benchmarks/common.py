"""Shared helpers for the decomp benchmarks: machine description, interleaved timing, FLOP counting and a matmul roofline.

Benchmarks are scripts, not tests. Every comparison is measured in the same process with the same thread count,
after warm-up, alternating the implementations (A B A B ...) so that load from other processes hits both alike.
"""
from __future__ import annotations
import os, platform, statistics, time
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten


def set_threads(n: int | None = None) -> int:
    "Use `n` intra-op threads (default: BENCH_THREADS or all cores); returns the number in use."
    n = int(os.environ.get('BENCH_THREADS', n or os.cpu_count() or 1))
    torch.set_num_threads(n)
    return torch.get_num_threads()


def machine() -> dict:
    "CPU model, cores, torch version, threads, load average."
    cpu = 'unknown'
    try:
        for line in open('/proc/cpuinfo'):
            if line.startswith('model name'): cpu = line.split(':', 1)[1].strip(); break
    except OSError: pass
    return {'cpu': cpu, 'cores': os.cpu_count(), 'torch': torch.__version__, 'threads': torch.get_num_threads(),
            'python': platform.python_version(), 'loadavg': os.getloadavg()}


def interleaved(fns: dict[str, Callable[[], object]], reps: int = 5, inner: int = 1, warmup: int = 1) -> dict[str, list[float]]:
    "Seconds per call of each fn: `warmup` untimed calls each, then `reps` rounds A B A B ..., each timing `inner` calls."
    for f in fns.values():
        for _ in range(warmup): f()
    times = {k: [] for k in fns}
    for r in range(reps):
        order = list(fns.items()) if r % 2 == 0 else list(fns.items())[::-1]  # alternate who goes first
        for k, f in order:
            t0 = time.perf_counter()
            for _ in range(inner): f()
            times[k].append((time.perf_counter() - t0) / inner)
    return times


def med(ts: list[float]) -> float: return statistics.median(ts)


def count_flops(fn: Callable[[], object]) -> int:
    "Matmul/conv FLOPs (forward + backward) of one call of `fn`, as counted by torch.utils.flop_counter."
    with FlopCounterMode(display=False) as fc: fn()
    return fc.get_total_flops()


_MM_OPS = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default,
           aten.convolution.default, aten.convolution_backward.default}


class _Spec:
    def __init__(self, t: torch.Tensor): self.shape, self.stride, self.dtype = tuple(t.shape), tuple(t.stride()), t.dtype


class _Recorder(TorchDispatchMode):
    "Records every matmul / convolution call (op + argument shapes) made inside the mode."
    def __init__(self): super().__init__(); self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _MM_OPS:
            spec = lambda a: _Spec(a) if isinstance(a, torch.Tensor) else a
            self.calls.append((func, tree_map(spec, args), tree_map(spec, kwargs)))
        return func(*args, **kwargs)


def matmul_replay(fn: Callable[[], object], reps: int = 5) -> tuple[Callable[[], None], int]:
    "`(replay, n_calls)`: `replay()` runs exactly the matmul/conv kernels (same ops, shapes, strides) that `fn` runs, nothing else."
    with _Recorder() as rec: fn()
    def make(a):
        if not isinstance(a, _Spec): return a
        n = 1 + sum((s - 1) * st for s, st in zip(a.shape, a.stride)) if all(a.shape) else 0
        return torch.randn(max(n, 1), dtype=a.dtype).as_strided(a.shape, a.stride)
    calls = [(f, tree_map(make, args), tree_map(make, kw)) for f, args, kw in rec.calls]
    def replay():
        for f, args, kw in calls: f(*args, **kw)
    return replay, len(calls)


def load() -> tuple[float, float, float]: return os.getloadavg()
