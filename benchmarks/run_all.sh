#!/usr/bin/env bash
# Run the decomp benchmarks and regenerate benchmarks/results.md.
# Usage (from the repository root):
#   REFERENCE=/path/to/goodfire-ai/spd REF_PY=/path/to/python3.13 bash benchmarks/run_all.sh   # + decomp vs the reference
#   BATCHTOPK=/path/to/bartbussmann/BatchTopK bash benchmarks/run_all.sh                           # + the BatchTopK repo's own SAE step
#   BASELINE=1 bash benchmarks/run_all.sh                                                     # + the old home-made baseline
# REF_THREADS (default 1,2) and REF_REPS (default 9) set the reference comparison's thread counts and rounds.
# REF_PY needs torch, the reference's einops/jaxtyping/pydantic and decomp's fastcore/pyyaml/safetensors (see bench_reference.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export BENCH_THREADS=${BENCH_THREADS:-1}   # 1 intra-op thread by default: the shared machine is oversubscribed
mkdir -p benchmarks/out
uptime | tee benchmarks/out/load_start.txt
if [ -n "${REFERENCE:-}" ]; then "${REF_PY:-$PY}" benchmarks/bench_reference.py --reference "$REFERENCE" --threads "${REF_THREADS:-1,2}" --reps "${REF_REPS:-9}" --json benchmarks/out/reference.json; fi
if [ -n "${BASELINE:-}" ]; then
  $PY benchmarks/bench_spd.py --reps 5 --json benchmarks/out/spd.json
  $PY benchmarks/memory_spd.py --json benchmarks/out/memory.json
fi
$PY benchmarks/bench_sae.py --reps 3 ${BATCHTOPK:+--batchtopk "$BATCHTOPK"} --json benchmarks/out/sae.json
$PY benchmarks/bench_pgd.py --reps 7 --json benchmarks/out/pgd.json
$PY benchmarks/bench_data.py --reps 7 --json benchmarks/out/data.json
uptime | tee benchmarks/out/load_end.txt
$PY benchmarks/report.py
