"""Write benchmarks/results.md from benchmarks/out/{reference,spd,sae,memory,pgd,data}.json + the hand-written benchmarks/findings.md.

A section whose JSON is missing (a partial run, e.g. without the reference checkout) is kept as it stands in the current
results.md, under a line saying so; a section that was never measured is left out."""
from __future__ import annotations
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / 'out'


def _ms(v: float) -> str: return f"{v * 1e3:.1f}"


def reference_section(ref: dict) -> list[str]:
    "The 'decomp vs the reference implementation' section (issue 19) from bench_reference.py's JSON."
    m, R = ref['machine'], ref['reference']
    res = ref['results']
    L = ['## SPD training step: decomp vs the reference implementation (goodfire-ai/spd), side by side\n',
         f"`bench_reference.py --reference PATH` imports the reference from a checkout outside this repository: **goodfire-ai/spd "
         f"{R['commit']}** (modules stubbed because they are not installed: {', '.join(R['stubbed']) or 'none'}; none runs in a "
         f"training step). Machine: {m['cpu']}, {m['cores']} cores, shared with other sessions; torch {m['torch']}, Python "
         f"{m['python']} (both sides in one process, same torch). Load average {tuple(round(v, 2) for v in ref['load_start'])} at "
         f"the start, {tuple(round(v, 2) for v in ref['load_end'])} at the end (2 cores: above 2 means other processes competed "
         "for the CPU; ratios are interleaved medians and move less than the absolute times).\n",
         'Same target weights, same initial components and CI functions (decomp\'s copied into the reference\'s), same batch, same '
         'loss terms and coefficients: stochastic reconstruction 1, layerwise 1, importance minimality 3e-3 (p = 1), delta '
         'component, 1 continuous mask sample, `mlp` CI functions [16], AdamW. decomp step = `SPD.loss_terms` + backward + AdamW; '
         'reference step = the body of its `optimize` loop (weight deltas, cached target forward, `calc_causal_importances`, '
         '`compute_total_loss`, backward, the L0 it logs, AdamW). fp32 = no autocast on either side; bf16 = bfloat16 autocast on '
         f"both; default = each side's default config (reference: autocast_bf16={R['autocast_default']}; decomp: amp_dtype="
         f"{ref['decomp_default_amp']!r}). 'compiled' = decomp with `SPDConfig(compile=True)` (the CI functions torch.compiled). "
         "'matmul only' = exactly the matmul kernels of decomp's step replayed alone (same shapes, strides, dtypes).\n",
         '**Deterministic terms agree before timing** (float32): ' + '; '.join(
             f"{r['case']}: CI values max |diff| {r['agree']['ci_max_abs_diff']:.1e}, importance minimality rel. diff "
             f"{r['agree']['imp_min_rel_diff']:.1e}, CI-masked recon rel. diff {r['agree']['ci_masked_recon_rel_diff']:.1e}"
             for r in res if 'agree' in r) + '.\n']
    for t in res[0]['threads']:
        L += [f"**{t} intra-op thread(s)**, ms per step, decomp / reference (ratio = reference time / decomp time):\n",
              '| case | fp32 | **ratio** | bf16 autocast | **ratio** | each default | **ratio** | decomp compiled fp32 / bf16 | '
              'matmul only fp32 / bf16 | decomp step / matmul only, fp32 / bf16 |', '|---|---|---|---|---|---|---|---|---|---|']
        for r in res:
            md = r['threads'][t]['median_s']
            cell = lambda p: (f"{_ms(md[f'decomp_{p}'])} / {_ms(md[f'reference_{p}'])}", f"**{md[f'reference_{p}'] / md[f'decomp_{p}']:.2f}x**") \
                if f'reference_{p}' in md else (f"{_ms(md[f'decomp_{p}'])} / -", '-')
            cells = [c for p in ('fp32', 'bf16', 'default') for c in cell(p)]
            comp = ' / '.join(_ms(md[k]) for k in ('decomp_fp32_compiled', 'decomp_bf16_compiled') if k in md) or '-'
            L.append(f"| {r['desc']} | {' | '.join(cells)} | {comp} | {_ms(md['matmul_fp32'])} / {_ms(md['matmul_bf16'])} | "
                     f"{md['decomp_fp32'] / md['matmul_fp32']:.2f}x / {md['decomp_bf16'] / md['matmul_bf16']:.2f}x |")
        L.append('')
    L += ['**Work per step** (matmul/conv GFLOP, forward + backward, torch.utils.flop_counter) and **peak memory of one step** '
          '(RSS delta in a fresh process, 1 thread):\n',
          '| case | decomp GFLOP fp32 | reference GFLOP fp32 | decomp MB fp32 | reference MB fp32 | decomp MB default | reference MB default |',
          '|---|---|---|---|---|---|---|']
    for r in res:
        mm = r['memory_mb']
        g = lambda k: f"{r[k]:.3f}" if k in r else '-'
        mb = lambda k: f"{mm[k]:.1f}" if k in mm else '-'
        L.append(f"| {r['case']} | {g('decomp_gflop_fp32')} | {g('reference_gflop_fp32')} | {mb('decomp_fp32')} | {mb('reference_fp32')} | "
                 f"{mb('decomp_default')} | {mb('reference_default')} |")
    L.append('')
    L.append('Per-round times (s), 1 thread:\n')
    t1 = next(iter(res[0]['threads']))
    for r in res:
        raw = r['threads'][t1]['raw']
        L.append(f"- {r['case']}: " + '; '.join(f"{k} {[round(v, 4) for v in raw[k]]}" for k in raw if not k.startswith('matmul')))
    L.append('')
    ok = lambda b: 'MET' if b else 'NOT MET'
    L += ['| target (issue 19) | measured | status |', '|---|---|---|']
    for t in res[0]['threads']:
        for p in ('fp32', 'bf16', 'default'):
            rs = [r['threads'][t]['median_s'] for r in res if f'reference_{p}' in r['threads'][t]['median_s']]
            ratios = [md[f'reference_{p}'] / md[f'decomp_{p}'] for md in rs]
            L.append(f"| decomp's step >= 2x the reference's, {p}, {t} thread(s), every case | "
                     f"{', '.join(f'{x:.2f}x' for x in ratios)} | {ok(min(ratios) >= 2)} |")
    for p in ('fp32', 'default'):
        pairs = [(r['case'], r['memory_mb'][f'decomp_{p}'], r['memory_mb'][f'reference_{p}']) for r in res if f'reference_{p}' in r['memory_mb']]
        if pairs:
            L.append(f"| peak step memory <= the reference's, {p} | " + ', '.join(f"{c} {a:.1f} vs {b:.1f} MB" for c, a, b in pairs)
                     + f" | {ok(all(a <= b for _, a, b in pairs))} |")
    mult = [r['threads'][t1]['median_s']['decomp_fp32'] / r['threads'][t1]['median_s']['matmul_fp32'] for r in res]
    L.append(f"| decomp's step <= 1.5x its matmul-only time (fp32, 1 thread) | {', '.join(f'{x:.2f}x' for x in mult)} | {ok(max(mult) <= 1.5)} |")
    L.append('')
    return L


def pgd_section(pgd: dict) -> list[str]:
    "The 'Persistent PGD' section (issue 15) from bench_pgd.py's JSON."
    m, lad = pgd['machine'], pgd['ladder']
    L = ['## Persistent PGD: training step and adversarial ladder (issue 15)\n',
         f"`bench_pgd.py`, on {m['cpu']} ({m['cores']} cores), **{m['threads']} intra-op thread(s)**, torch {m['torch']}; load average "
         f"{tuple(round(v, 2) for v in pgd['load_start'])} at the start, {tuple(round(v, 2) for v in pgd['load_end'])} at the end. "
         "Stochastic step = `spd_loss_terms` with the default rows (faithfulness, stochastic recon all layers + layerwise, importance "
         "minimality) + backward + AdamW; persistent step = the same model, batch and rows + `persistent_pgd_recon` "
         f"({pgd['pgd_row']}, past its warm-up) and the sources' sign-gradient step (`persistent_pgd_update`). Both from the same "
         "parameters, interleaved rounds, medians.\n",
         '| case | adv_fraction | stochastic ms/step | persistent PGD ms/step | **ratio** |', '|---|---|---|---|---|']
    for r in pgd['steps']:
        L.append(f"| {r['desc']} | {r['adv_fraction']:g} | {r['stochastic_s']*1e3:.1f} | {r['persistent_s']*1e3:.1f} | **{r['ratio']:.2f}x** |")
    L += ['', 'Per-round times (s):\n']
    L += [f"- {r['desc']}, adv_fraction {r['adv_fraction']:g}: stochastic {[round(t, 4) for t in r['raw']['stochastic']]}, "
          f"persistent {[round(t, 4) for t in r['raw']['persistent_pgd']]}" for r in pgd['steps']]
    L += ['', f"**Adversarial ladder** (`adversarial_ladder`, shared sources, step size 0.1) on {lad['desc']} (a fresh "
          "decomposition: the time does not depend on the weights' values): 20 steps take "
          f"**{lad['20']['seconds']:.2f} s** (median of {len(lad['20']['raw'])}), the full ladder (0, 20, 80, 320) "
          f"{lad['0,20,80,320']['seconds']:.2f} s.\n"]
    worst = max(r['ratio'] for r in pgd['steps'])
    L += ['| target | measured | status |', '|---|---|---|',
          f"| persistent-PGD step <= 1.5x a stochastic-only step (same model, same batch; TMS 5-2 and MNIST MLP C = 100/100) | "
          f"at most {worst:.2f}x | {'MET' if worst <= 1.5 else 'NOT MET'} |",
          f"| 20-step shared-source ladder on 1,000 MNIST images takes seconds | {lad['20']['seconds']:.2f} s | "
          f"{'MET' if lad['20']['seconds'] < 10 else 'NOT MET'} |", '']
    return L


def data_section(data: dict) -> list[str]:
    "The 'Fast data paths' section (issue 19, item 4) from bench_data.py's JSON."
    m = data['machine']
    L = ['## Fast data paths: `train_spd` fed a tensor or a DataLoader (issue 19, item 4)\n',
         f"`bench_data.py`, on {m['cpu']} ({m['cores']} cores), **{m['threads']} intra-op thread(s)**, torch {m['torch']}; load average "
         f"{tuple(round(v, 2) for v in data['load_start'])} at the start, {tuple(round(v, 2) for v in data['load_end'])} at the end. "
         "Each round is a fresh `train_spd` of the same steps per path (set-up included), interleaved, medians: *tensor* = "
         "`train_spd(target, X, cfg)`; *DataLoader* = `train_spd(target, DataLoader(TensorDataset(X), batch_size, shuffle=True, "
         "generator=...), cfg)`, read by index along the loader's own batch sampler (its batches checked equal to the loader's "
         "first); *per-sample* = the same loader with a `collate_fn` of its own, which takes the loader's per-sample indexing and "
         "collation (what every DataLoader cost before the fast path). The tensor path's set-up includes one NaN/inf check of the "
         "whole dataset.\n",
         '| case | steps per round | tensor ms/step | DataLoader ms/step | **DataLoader / tensor** | per-sample ms/step | per-sample / tensor | one batch: per-sample / fast path ms |',
         '|---|---|---|---|---|---|---|---|']
    for r in data['cases']:
        t = r['step_s']
        L.append(f"| {r['desc']} | {r['steps']} | {t['tensor']*1e3:.1f} | {t['dataloader']*1e3:.1f} | **{r['ratio']:.2f}x** | "
                 f"{t['per_sample']*1e3:.1f} | {r['ratio_per_sample']:.2f}x | {r['batch_s']['per_sample']*1e3:.2f} / {r['batch_s']['fast']*1e3:.2f} |")
    L += ['', 'Per-round times (s):\n']
    L += [f"- {r['desc']}: " + '; '.join(f"{k} {[round(v, 3) for v in vs]}" for k, vs in r['raw'].items()) for r in data['cases']]
    worst, ratios = max(abs(r['ratio'] - 1) for r in data['cases']), ', '.join(f"{r['ratio']:.2f}x" for r in data['cases'])
    L += ['', '| target (issue 19) | measured | status |', '|---|---|---|',
          f"| DataLoader-fed and tensor-fed runs within 10% of each other | "
          f"{ratios} | {'MET' if worst <= 0.1 else 'NOT MET'} |", '']
    return L


# the first words of each generated section's heading, to find it in the current results.md when its JSON is missing
_HEADINGS = {'reference': '## SPD training step: decomp vs the reference', 'spd': '## SPD training step: decomp vs a home-made',
             'sae': '## BatchTopK SAE', 'memory': '## Peak memory of an SPD step', 'pgd': '## Persistent PGD',
             'data': '## Fast data paths'}


def _kept(name: str, old: str) -> list[str]:
    "The section `name` as it stands in the current results.md (up to the next '## ' heading), or [] when it is not there."
    start = old.find('\n' + _HEADINGS[name])
    if start < 0: return []
    end = old.find('\n## ', start + 1)
    body = old[start + 1:end if end >= 0 else len(old)].rstrip('\n').split('\n')
    note = f"_Kept from the previous results.md: benchmarks/out/{name}.json is not in this run._"
    return [body[0], ''] + ([] if note in body else [note]) + body[1:] + ['']


def _load(name: str) -> dict | None:
    f = OUT / f'{name}.json'
    return json.loads(f.read_text()) if f.exists() else None


def main():
    old = (HERE / 'results.md').read_text() if (HERE / 'results.md').exists() else ''
    ref, spd, sae, mem = (_load(f) for f in ('reference', 'spd', 'sae', 'memory'))
    L = []
    w = L.append
    w('# decomp benchmarks\n')
    w('Generated by `bash benchmarks/run_all.sh` (from the repository root), which runs `bench_reference.py` (when REFERENCE names a '
      'goodfire-ai/spd checkout and REF_PY a Python that imports it), `bench_sae.py`, `bench_pgd.py` (and, with BASELINE=1, '
      '`bench_spd.py` and `memory_spd.py`), `bench_data.py` and this report (`report.py`); a section whose JSON is not in '
      '`benchmarks/out/` is kept from the previous results.md and says so. Every ratio compares implementations measured in the same process, same threads, after '
      'warm-up, interleaved A B A B (the order alternates every round), median of the rounds. The machine is shared: the load '
      'average printed with each section says how busy it was; absolute times scale with it, the ratios much less.\n')
    sections = {'reference': reference_section, 'spd': baseline_section, 'sae': sae_section, 'memory': memory_section,
                'pgd': pgd_section, 'data': data_section}
    for name, make in sections.items():
        js = {'reference': ref, 'spd': spd, 'sae': sae, 'memory': mem}.get(name) or _load(name)
        L.extend(make(js) if js else _kept(name, old))
    f = HERE / 'findings.md'
    if f.exists(): w(f.read_text())
    (HERE / 'results.md').write_text('\n'.join(L) + '\n')
    print('wrote', HERE / 'results.md')


def baseline_section(spd: dict) -> list[str]:
    "The old home-made baseline (bench_spd.py): kept for its TMS 40-10 and matmul-roofline columns."
    L = []
    w = L.append
    m = spd['machine']
    w(f"_{m['cpu']}, {m['threads']} thread(s), load {tuple(round(v, 2) for v in spd['load_start'])}._\n")
    w('## SPD training step: decomp vs a home-made baseline (bench_spd.py; NOT the reference: see the section above)\n')
    w('Step = the four SPD loss terms (faithfulness, stochastic recon, layerwise stochastic recon, importance minimality; '
      '1 mask sample, MLP CI functions with hidden 16) + backward + AdamW. The baseline (in `bench_spd.py`) uses forward '
      'hooks, per-layer Python loops, a per-component Python loop in the CI function, recomputes the CI (and the hooked '
      'target forward) for every loss term, runs one masked forward per mask sample and per layer, and recomputes the '
      "frozen target's output for every mask sample. Both start from the same parameters; the deterministic terms "
      '(faithfulness, importance minimality) agree to float precision (checked before timing). Inputs are synthetic '
      '(speed does not depend on the values). GFLOP/s counts matmul/conv FLOPs (torch.utils.flop_counter, forward + '
      "backward); 'matmul on same shapes' replays exactly the mm/addmm/bmm/conv kernels of decomp's step (same shapes, "
      "strides) with nothing else, i.e. the throughput torch's matmul reaches on that step's shapes.\n")
    w('| case | batch | decomp ms/step | decomp steps/s | decomp samples/s | baseline ms/step | baseline steps/s | '
      'baseline samples/s | **speedup** | decomp GFLOP/s | baseline GFLOP/s | matmul GFLOP/s, same shapes | matmul-only time / decomp step |')
    w('|---|---|---|---|---|---|---|---|---|---|---|---|---|')
    for r in spd['results']:
        w(f"| {r['desc']} | {r['batch']} | {r['decomp_s']*1e3:.1f} | {r['decomp_steps_s']:.2f} | {r['decomp_samples_s']:.0f} | "
          f"{r['baseline_s']*1e3:.1f} | {r['baseline_steps_s']:.2f} | {r['baseline_samples_s']:.0f} | **{r['speedup']:.2f}x** | "
          f"{r['decomp_gflops']:.2f} | {r['baseline_gflops']:.2f} | {r['matmul_gflops_same_shapes']:.2f} | {r['frac_of_matmul']:.1%} |")
    w('')
    w('Per-round times (s), to judge the noise:\n')
    for r in spd['results']:
        w(f"- {r['case']}: decomp {[round(t, 3) for t in r['raw']['decomp']]}, baseline {[round(t, 3) for t in r['raw']['baseline']]}")
    w('')

    return L


def sae_section(sae: dict) -> list[str]:
    L = []
    w = L.append
    w('## BatchTopK SAE / transcoder training step vs one dense matmul\n')
    w(f"Load average {tuple(round(v, 2) for v in sae['load_start'])} at the start, {tuple(round(v, 2) for v in sae['load_end'])} at the end.\n")
    w(f"d_in 784, dictionary 4096, batch 4096, k 32, data: {sae['data']}. Yardstick: one dense (4096 x 784) @ (784 x 4096) "
      "matmul, timed interleaved with the steps. decomp step = what `train_sae` runs (forward with AuxK dead mask, "
      "activity update, backward, decoder-gradient projection, fused Adam, renormalisation). Dense baseline = the "
      "BatchTopK-repo recipe (dense ReLU pre-activations, `topk` over the flattened batch x dict, dense scatter, dense "
      "decoder, dense autograd) with the same projection/Adam/renormalisation. Both give the same reconstruction on the "
      "first batch (max abs difference in the table).\n")
    w('| model | matmul ms | matmul GFLOP/s | decomp ms/step | decomp steps/s | decomp samples/s | **decomp / matmul** | '
      'dense ms/step | **dense / matmul** | decomp speedup vs dense | recon max abs diff |')
    w('|---|---|---|---|---|---|---|---|---|---|---|')
    for r in sae['results']:
        w(f"| {r['name']} | {r['matmul_s']*1e3:.1f} | {r['matmul_gflops']:.1f} | {r['decomp_s']*1e3:.1f} | {r['decomp_steps_s']:.2f} | "
          f"{r['decomp_samples_s']:.0f} | **{r['decomp_over_matmul']:.2f}x** | {r['dense_s']*1e3:.1f} | **{r['dense_over_matmul']:.2f}x** | "
          f"{r['speedup']:.2f}x | {r['recon_max_abs_diff']:.1e} |")
    w('')
    for r in sae['results']:
        w(f"- {r['name']} rounds (s): matmul {[round(t, 3) for t in r['raw']['matmul']]}, decomp {[round(t, 3) for t in r['raw']['decomp']]}, "
          f"dense {[round(t, 3) for t in r['raw']['dense']]}")
    w('')

    hd = sae.get('half_dead')
    if hd:
        w(f"**Half the dictionary dead** (AuxK active: {hd['n_dead']} dead features, k_aux = {hd['k_aux']} a sample, density "
          f"{hd['density']:.2f}; the AuxK decode is dense from density {hd['dense_from']}): one matmul {hd['matmul_s']*1e3:.1f} ms, "
          f"decomp's step {hd['decomp_s']*1e3:.1f} ms = **{hd['decomp_over_matmul']:.2f}x** the matmul; with the AuxK decode forced "
          f"sparse {hd['decomp_sparse_auxk_s']*1e3:.1f} ms = {hd['sparse_auxk_over_matmul']:.2f}x.\n")
    repo = sae.get('repo')
    if repo:
        w(f"**The BatchTopK repo's own step** (bartbussmann/BatchTopK {repo['commit']}, imported from a checkout outside this "
          "repository: its `BatchTopKSAE` and the body of its `train_sae` loop: forward, backward, `clip_grad_norm_`, "
          "`make_decoder_weights_and_grad_unit_norm`, Adam; top_k 32, top_k_aux 392, aux_penalty 1/32, float32), from the same "
          "weights as decomp's SAE, interleaved with decomp's step and the matmul in the same run:\n")
        w('| case | matmul ms | decomp ms/step | **decomp / matmul** | repo ms/step | **repo / matmul** | decomp speed-up vs repo | recon max abs diff |')
        w('|---|---|---|---|---|---|---|---|')
        for label, name in (('no_dead', 'no dead feature'), ('half_dead', f"half the dictionary dead (AuxK active)")):
            r = repo.get(label)
            if r: w(f"| {name} | {r['matmul_s']*1e3:.1f} | {r['decomp_s']*1e3:.1f} | **{r['decomp_over_matmul']:.2f}x** | "
                    f"{r['repo_s']*1e3:.1f} | **{r['repo_over_matmul']:.2f}x** | {r['speedup']:.2f}x | {r['recon_max_abs_diff']:.1e} |")
        w('')
        for label in ('no_dead', 'half_dead'):
            r = repo.get(label)
            if r: w(f"- {label} rounds (s): matmul {[round(t, 3) for t in r['raw']['matmul']]}, decomp {[round(t, 3) for t in r['raw']['decomp']]}, "
                    f"repo {[round(t, 3) for t in r['raw']['repo']]}")
        w('')
    return L


def memory_section(mem: dict) -> list[str]:
    L = []
    w = L.append
    w('## Peak memory of an SPD step vs C and batch size\n')
    w(f"{mem['model']}. Each point is a fresh subprocess: peak resident set during one step (after a warm-up step) minus "
      'the resident set before it (VmHWM reset through /proc/self/clear_refs; glibc forced to return freed blocks).\n')
    for key, var, fixed in (('vs_C', 'C', f"batch {mem['vs_C']['batch']}"), ('vs_batch', 'batch', f"C = {mem['vs_batch']['C']}")):
        f = mem[key]['fit']
        w(f"**vs {var}** ({fixed}): " + ', '.join(f"{var} = {p[var]}: {p['step_peak_mb']:.1f} MB" for p in mem[key]['points'])
          + f". Least-squares line: **{f['slope_mb']*1000:.1f} KB per unit of {var} + {f['intercept_mb']:.1f} MB, R^2 = {f['r2']:.4f}**.\n")

    return L


if __name__ == '__main__':
    main()
