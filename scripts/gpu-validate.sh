#!/usr/bin/env bash
# The one prepared script for a machine with an NVIDIA GPU and no Rust
# toolchain (it has the driver, CUDA, PyTorch and nvcc). It takes a release
# binary built elsewhere (target/release/kiln, carried over), and in one call:
#   1. kiln list and kiln selftest (every kernel against the CPU reference);
#   2. kiln run --profile quick on every GPU (results, telemetry trace), and
#      kiln's figures for GPU 0 as soon as the run ends;
#   3. the same quantities measured with PyTorch on the same GPU, same call:
#      torch.matmul 8192^3 in bf16, fp16, tf32, fp32, fp64 (and fp8 through
#      torch._scaled_mm where it exists), a 2 GiB device-to-device copy and
#      sum, and 256 MiB pinned host<->device copies, then the table of
#      ratios kiln / torch;
#   4. when a criterion bench binary is given (cargo bench --no-run prints
#      its path, target/release/deps/workloads-*), its cuda/ groups.
#
# Time: every step has its own limit, and the limits add up to 435 s, under
# the 8 minutes this script must finish in on one H200 (the device machine
# runs one command for at most 10 minutes). Each step writes its output to
# its own file under $OUT (default ./gpu-validation) when it finishes, and
# the tables are printed as their results arrive, so a command cut short
# keeps everything done before the cut.
#
# Usage: scripts/gpu-validate.sh [KILN_BINARY [BENCH_BINARY]]
set -uo pipefail
kiln="${1:-target/release/kiln}"
bench="${2:-}"
out="${OUT:-./gpu-validation}"
mkdir -p "$out"
log="$out/validate.log"
exec > >(tee -a "$log") 2>&1

# step NAME LIMIT_S COMMAND...: runs COMMAND under `timeout LIMIT_S`, its
# output to the terminal and to $out/NAME.txt; prints and returns its exit
# status (124: cut at its limit).
step() {
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit} s)"
    timeout --kill-after=5 "$limit" "$@" > >(tee "$out/$name.txt") 2>&1
    local rc=$?
    echo "exit $rc$([ "$rc" = 124 ] && echo " (cut at its ${limit} s limit)")"
    return $rc
}

echo "== $(date -u +%FT%TZ) kiln GPU validation on $(hostname)"
timeout 10 nvidia-smi --query-gpu=index,name,pci.bus_id,driver_version,memory.total,power.limit,clocks.max.sm --format=csv 2>&1 | tee "$out/nvidia-smi.txt" || true
# cuBLASLt from a CUDA or PyTorch installation, when kiln's own search misses it.
torch_libs=$(timeout 10 python3 -c 'import os, nvidia, glob; r=os.path.dirname(nvidia.__path__[0]); print(":".join(sorted(set(os.path.dirname(p) for p in glob.glob(r+"/nvidia/*/lib/*.so*")))))' 2>/dev/null || true)
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}${torch_libs}:/usr/local/cuda/lib64"

step list 15 "$kiln" list --backend cuda
step selftest 100 "$kiln" selftest --backend cuda; selftest_rc=$?
step quick 140 "$kiln" run --backend cuda --profile quick --out "$out/quick" --sample-rate 1; run_rc=$?
cp "$out/quick/telemetry.csv" "$out/telemetry-quick.csv" 2>/dev/null || true

# The table of kiln's figures and the torch ratios, from whatever exists.
summary() {
    timeout 15 python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
try:
    k = json.load(open(os.path.join(out, "quick", "results.json")))
except Exception as e:
    print("no kiln results:", e); sys.exit(0)
tp = os.path.join(out, "torch.json")
t = json.load(open(tp)) if os.path.exists(tp) else {}
d0 = k["devices"][0]
m = {x["name"]: (x["value"], x["unit"]) for x in d0["metrics"]}
def row(name, kv, ref, unit):
    r = f"{kv / ref:.2f}" if kv and ref else "-"
    f = lambda x: f"{x:.1f}" if isinstance(x, (int, float)) else "-"
    print(f"{name:<22} {f(kv):>12} {f(ref):>12} {r:>6} {unit}")
print(f"{'metric (GPU 0)':<22} {'kiln':>12} {'torch':>12} {'ratio':>6} unit")
for v in ("bf16", "fp16", "tf32", "fp8", "fp32", "fp64"):
    row(f"matmul_{v}", m.get(f"matmul_{v}", (None,))[0], t.get(f"torch_matmul_{v}_tflops"), "TFLOP/s")
for v in ("mma_bf16", "mma_fp16"):
    row(f"matmul_{v}", m.get(f"matmul_{v}", (None,))[0], t.get("torch_matmul_" + v[4:] + "_tflops"), "TFLOP/s (vs torch cuBLAS)")
row("bw_copy", m.get("bw_copy", (None,))[0], t.get("torch_copy_gbps"), "GB/s")
row("bw_read", m.get("bw_read", (None,))[0], t.get("torch_sum_gbps"), "GB/s")
row("h2d", m.get("h2d", (None,))[0], t.get("torch_h2d_gbps"), "GB/s")
row("d2h", m.get("d2h", (None,))[0], t.get("torch_d2h_gbps"), "GB/s")
row("p2p", m.get("p2p", (None,))[0], None, "GB/s")
row("sha256d", m.get("sha256d", (None,))[0], None, "MH/s (x2 = G compressions/s / 1000)")
row("memtest", m.get("memtest", (None,))[0], None, "GB/s")
for d in k["devices"]:
    print(f"GPU {d['index']} {d['name']} {d.get('pci_bus_id')}: {d['verdict'].upper()} {' '.join(d['reasons'])}")
PY
}
echo "== kiln's figures (torch follows)"
summary | tee "$out/summary-kiln.txt"

cat > "$out/torch.py" <<'PY'
import json, sys
try:
    import torch
except Exception as e:
    print("torch unavailable:", e); sys.exit(0)
res = {}
dev = torch.device("cuda:0")
def save():
    json.dump(res, open(sys.argv[1], "w"))  # after every figure: a cut keeps the rest
def timed(fn, reps=20):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(3): fn()
    torch.cuda.synchronize(); ts = []
    for _ in range(reps):
        s.record(); fn(); e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e) / 1e3)
    ts.sort(); return ts[len(ts) // 2]
n = 8192
for name, dt, tf32 in (("bf16", torch.bfloat16, False), ("fp16", torch.float16, False),
                       ("tf32", torch.float32, True), ("fp32", torch.float32, False),
                       ("fp64", torch.float64, False)):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    x = torch.randn(n, n, device=dev, dtype=dt); y = torch.randn(n, n, device=dev, dtype=dt)
    res[f"torch_matmul_{name}_tflops"] = 2 * n**3 / timed(lambda: x @ y, 10 if dt != torch.float64 else 5) / 1e12
    del x, y; save()
torch.backends.cuda.matmul.allow_tf32 = False
try:
    x = torch.randn(n, n, device=dev).to(torch.float8_e4m3fn)
    y = torch.randn(n, n, device=dev).to(torch.float8_e4m3fn).t()  # column-major, as _scaled_mm wants
    one = torch.ones((), device=dev)
    res["torch_matmul_fp8_tflops"] = 2 * n**3 / timed(lambda: torch._scaled_mm(x, y, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)) / 1e12
    del x, y; save()
except Exception as e:
    print("torch fp8 matmul unavailable:", e)
elems = 1 << 28  # 2 GiB of f64
src = torch.ones(elems, device=dev, dtype=torch.float64); dst = torch.empty_like(src)
res["torch_copy_gbps"] = 16 * elems / timed(lambda: dst.copy_(src)) / 1e9
res["torch_sum_gbps"] = 8 * elems / timed(lambda: src.sum()) / 1e9
del src, dst; save()
words = 32 << 20  # 256 MiB, as kiln's quick profile
host = torch.ones(words, dtype=torch.float64).pin_memory(); devbuf = torch.empty(words, device=dev, dtype=torch.float64)
res["torch_h2d_gbps"] = 8 * words / timed(lambda: devbuf.copy_(host, non_blocking=True)) / 1e9
res["torch_d2h_gbps"] = 8 * words / timed(lambda: host.copy_(devbuf, non_blocking=True)) / 1e9
res["gpu"] = torch.cuda.get_device_name(0)
save(); print(json.dumps(res, indent=1))
PY
step torch 80 python3 "$out/torch.py" "$out/torch.json"
echo "== summary: kiln against torch"
summary | tee "$out/summary.txt"

if [ -n "$bench" ] && [ -x "$bench" ]; then
    step bench-cuda 50 "$bench" --bench cuda/ --warm-up-time 1 --measurement-time 2
fi
echo "== done: selftest exit $selftest_rc, run exit $run_rc; full output in $out"
