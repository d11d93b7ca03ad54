#!/usr/bin/env bash
# Run every decomp benchmark (about 5 minutes on a 2-core CPU) and regenerate benchmarks/results.md.
# Usage (from the repository root): bash benchmarks/run_all.sh      [BENCH_THREADS=2 bash benchmarks/run_all.sh]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export BENCH_THREADS=${BENCH_THREADS:-1}   # 1 intra-op thread by default: the shared machine is oversubscribed
mkdir -p benchmarks/out
uptime | tee benchmarks/out/load_start.txt
$PY benchmarks/bench_spd.py --reps 5 --json benchmarks/out/spd.json
$PY benchmarks/bench_sae.py --reps 3 --json benchmarks/out/sae.json
$PY benchmarks/memory_spd.py --json benchmarks/out/memory.json
$PY benchmarks/bench_pgd.py --reps 7 --json benchmarks/out/pgd.json
uptime | tee benchmarks/out/load_end.txt
$PY benchmarks/report.py
