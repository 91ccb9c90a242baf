#!/usr/bin/env bash
# Side-by-side: kiln's CPU backend against the best common tools on the same
# machine, in the same run, interleaved round by round (see BENCHMARKS.md).
#   - matmul: OpenBLAS sgemm/dgemm through numpy, 1 thread and all threads
#   - copy:   numpy.copyto (glibc memcpy) on the same buffer sizes
#   - triad:  a plain C loop, gcc -O3 -march=native -fopenmp, same sizes/threads
#   - sha256: openssl speed -evp sha256, single process and -multi
# Installs what it needs (numpy from PyPI into a venv, gcc and openssl are on
# the machine). Usage: scripts/compare-cpu.sh [ROUNDS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"
venv="${KILN_BENCH_VENV:-$HOME/.cache/kiln/bench-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check numpy threadpoolctl
fi
cargo build --release --quiet --bin kiln --example overhead
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
gcc -O3 -march=native -fopenmp -o "$work/triad" scripts/compare/triad.c
exec "$venv/bin/python" scripts/compare/compare.py --rounds "$rounds" --work "$work" \
  --kiln target/release/kiln --triad "$work/triad" --overhead target/release/examples/overhead
