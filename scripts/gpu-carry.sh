#!/usr/bin/env bash
# Prepares what a session carries to a GPU machine (64 MiB at most): the
# release binary and the criterion bench binary, stripped, in target/carry/.
# Prints the device tool's carry list and command.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bench=$(cargo bench --no-run 2>&1 | grep -o 'target/release/deps/workloads-[0-9a-f]*' | tail -1)
mkdir -p target/carry
cp target/release/kiln target/carry/kiln
cp "$bench" target/carry/workloads
strip target/carry/kiln target/carry/workloads
du -h target/carry/kiln target/carry/workloads
echo 'carry: ["target/carry"]'
echo 'command: OUT=$OUT bash scripts/gpu-validate.sh target/carry/kiln target/carry/workloads'
