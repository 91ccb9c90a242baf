#!/usr/bin/env bash
# Checks kiln's CUDA kernels without a GPU and without a CUDA toolkit:
#   1. installs the pinned NVIDIA wheels (NVRTC, runtime headers, ptxas) into
#      a virtual environment under ~/.cache (reused by later runs);
#   2. regenerates the PTX with NVRTC into a temporary folder and fails if it
#      differs from the committed kernels/ptx (the PTX must match kernels/);
#   3. assembles every PTX file with ptxas for sm_80 and sm_90, prints one
#      line per kernel with its registers, and fails on a compile error or a
#      register spill;
#   4. builds and runs kernels/test/host_check.cpp with g++: the kernels'
#      integer code against values from kiln's Rust reference.
#
# Usage: scripts/check-kernels.sh           (CI)
#        scripts/check-kernels.sh --update  (rewrite kernels/ptx, then check)
# KILN_CUDA_VENV overrides where the wheels are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

# The CUDA release the PTX is generated with. Changing it changes every
# committed PTX file and the minimum driver (see kernels/README.md).
CUDA_WHEELS="nvidia-cuda-nvrtc-cu12==12.2.140 nvidia-cuda-runtime-cu12==12.2.140 nvidia-cuda-nvcc-cu12==12.2.140"
ARCHS="sm_80 sm_90"

venv=${KILN_CUDA_VENV:-$HOME/.cache/kiln/cuda-wheels-12.2.140}
stamp="$venv/.kiln-wheels"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$CUDA_WHEELS" ]; then
    echo "== installing $CUDA_WHEELS into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/pip" install --quiet --disable-pip-version-check $CUDA_WHEELS
    echo "$CUDA_WHEELS" >"$stamp"
fi
py="$venv/bin/python"
ptxas=$("$py" -c 'import nvidia.cuda_nvcc, os; print(os.path.join(list(nvidia.cuda_nvcc.__path__)[0], "bin", "ptxas"))')

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ "${1:-}" = "--update" ]; then
    echo "== regenerating kernels/ptx"
    rm -f kernels/ptx/*.ptx
    "$py" scripts/build-ptx.py --out kernels/ptx
fi

echo "== PTX regenerated with NVRTC matches kernels/ptx"
"$py" scripts/build-ptx.py --out "$tmp/ptx" >/dev/null
if ! diff -r kernels/ptx "$tmp/ptx" >"$tmp/ptx.diff"; then
    head -40 "$tmp/ptx.diff"
    echo "FAIL: kernels/ptx is stale; run scripts/check-kernels.sh --update and commit kernels/ptx"
    exit 1
fi
echo "ok: $(ls kernels/ptx | wc -l) PTX files"

echo "== ptxas $("$ptxas" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p') for $ARCHS (registers; any spill fails)"
for ptx in kernels/ptx/*.ptx; do
    for arch in $ARCHS; do
        if ! "$ptxas" -arch="$arch" -v -o /dev/null "$ptx" >"$tmp/$(basename "$ptx").$arch.log" 2>&1; then
            cat "$tmp/$(basename "$ptx").$arch.log"
            echo "FAIL: ptxas -arch=$arch $ptx"
            exit 1
        fi
    done
done
"$py" - "$tmp" $ARCHS <<'EOF'
import glob, os, re, sys

tmp, archs = sys.argv[1], sys.argv[2:]
# kernel -> arch -> (registers, smem bytes, spill stores, spill loads)
info, files, bad = {}, {}, []
for log in sorted(glob.glob(os.path.join(tmp, "*.ptx.*.log"))):
    name, arch = os.path.basename(log)[: -len(".log")].rsplit(".", 1)
    kernel = None
    for line in open(log):
        m = re.search(r"Compiling entry function '(\w+)' for '(\w+)'", line)
        if m:
            kernel = m.group(1)
            files[kernel] = name[: -len(".ptx")]
            info.setdefault(kernel, {})[arch] = [0, 0, 0, 0]
            continue
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and kernel:
            info[kernel][arch][2:] = [int(m.group(1)), int(m.group(2))]
        m = re.search(r"Used (\d+) registers(?:, (\d+) bytes smem)?", line)
        if m and kernel:
            info[kernel][arch][0] = int(m.group(1))
            info[kernel][arch][1] = int(m.group(2) or 0)
for kernel in sorted(info, key=lambda k: (files[k], k)):
    parts = []
    for arch in archs:
        regs, smem, st, ld = info[kernel].get(arch, [0, 0, -1, -1])
        parts.append("%s %3d regs %6d B smem spill %d/%d" % (arch, regs, smem, st, ld))
        if st != 0 or ld != 0:
            bad.append("%s (%s): %d bytes spill stores, %d bytes spill loads" % (kernel, arch, st, ld))
    print("%-9s %-26s %s" % (files[kernel], kernel, " | ".join(parts)))
if bad:
    print("FAIL: register spills (or a kernel missing for an arch):\n  " + "\n  ".join(bad))
    sys.exit(1)
print("ok: %d kernels, no spills" % len(info))
EOF

echo "== host check (g++): integer code against the Rust reference"
g++ -std=c++17 -O2 -Wall -Wextra -Werror -o "$tmp/host_check" kernels/test/host_check.cpp
"$tmp/host_check"

echo "== kernels OK in $(($(date +%s) - start)) s"
