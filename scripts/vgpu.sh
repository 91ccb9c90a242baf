#!/usr/bin/env bash
# Runs a command with kiln's virtual GPU (vgpu/) as the CUDA driver, NVML and
# cuBLASLt: builds libvgpu.so, installs it as libcuda.so.1, libcuda.so,
# libnvidia-ml.so.1 and libcublasLt.so.12 in target/vgpu-lib/ and puts that
# folder first on LD_LIBRARY_PATH. No GPU, no NVIDIA driver.
#
#   scripts/vgpu.sh cargo run --release -- selftest --backend cuda
#   scripts/vgpu.sh --gpus 4 cargo run --release -- run --backend cuda
#   scripts/vgpu.sh --config my-node.toml target/release/kiln list
#
# --gpus N        a node of N default virtual GPUs (1 to 64)
# --config FILE   the node described by FILE (vgpu/README.md, "Configuration")
# --log FILE      vgpu's diagnostics to FILE instead of stderr
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
gpus="" config="" log=""
while [ $# -gt 0 ]; do
    case "$1" in
        --gpus) [ $# -ge 2 ] || usage; gpus=$2; shift 2 ;;
        --config) [ $# -ge 2 ] || usage; config=$2; shift 2 ;;
        --log) [ $# -ge 2 ] || usage; log=$2; shift 2 ;;
        --) shift; break ;;
        -h|--help) usage ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || usage
if [ -n "$gpus" ] && [ -n "$config" ]; then
    echo "vgpu.sh: give --gpus or --config, not both" >&2; exit 2
fi
cargo build --release --quiet -p vgpu --manifest-path "$root/Cargo.toml"
lib="$root/target/vgpu-lib"
mkdir -p "$lib"
for name in libcuda.so.1 libcuda.so libnvidia-ml.so.1 libcublasLt.so.12; do
    ln -sf "$root/target/release/libvgpu.so" "$lib/$name"
done
if [ -n "$gpus" ]; then
    case "$gpus" in ''|*[!0-9]*) echo "vgpu.sh: --gpus $gpus: expected a number from 1 to 64" >&2; exit 2 ;; esac
    if [ "$gpus" -lt 1 ] || [ "$gpus" -gt 64 ]; then
        echo "vgpu.sh: --gpus $gpus: expected a number from 1 to 64" >&2; exit 2
    fi
    printf '[node]\ngpus = %s\n' "$gpus" > "$lib/node.toml"
    export VGPU_CONFIG="$lib/node.toml"
elif [ -n "$config" ]; then
    [ -f "$config" ] || { echo "vgpu.sh: --config $config: no such file" >&2; exit 2; }
    VGPU_CONFIG=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
    export VGPU_CONFIG
fi
[ -z "$log" ] || export VGPU_LOG="$log"
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$@"
