"""Runs kiln and the reference tools round by round and prints one table of
medians and ratios (kiln / reference). Called by scripts/compare-cpu.sh."""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

NUMPY_GEMM = r"""
import sys, time, numpy as np
from threadpoolctl import threadpool_info
n, dtype, reps = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(1)
a = rng.uniform(-1, 1, (n, n)).astype(dtype); b = rng.uniform(-1, 1, (n, n)).astype(dtype)
c = a @ b  # warm-up
ts = []
for _ in range(reps):
    t = time.perf_counter(); c = a @ b; ts.append(time.perf_counter() - t)
ts.sort()
info = [(i.get("internal_api"), i.get("num_threads"), i.get("architecture")) for i in threadpool_info()]
print(2 * n**3 / ts[len(ts)//2] / 1e9, info)
"""

NUMPY_COPY = r"""
import sys, time, numpy as np
n, reps = int(sys.argv[1]), int(sys.argv[2])
a = np.arange(n, dtype=np.float64) % 251; c = np.zeros(n)
np.copyto(c, a)
ts = []
for _ in range(reps):
    t = time.perf_counter(); np.copyto(c, a); ts.append(time.perf_counter() - t)
ts.sort()
assert (c[::9973] == a[::9973]).all()
print(16 * n / ts[len(ts)//2] / 1e9)
"""


def run(cmd, env=None):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout


def env_with(threads):
    e = dict(os.environ)
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        e.pop(k, None)
    t = str(threads)
    e.update(RAYON_NUM_THREADS=t, MATMUL_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t,
             OMP_NUM_THREADS=t, MKL_NUM_THREADS=t)
    return e


def kiln_run(kiln, work, tag, threads):
    out = os.path.join(work, tag)
    subprocess.run([kiln, "run", "--backend", "cpu", "--profile", "quick",
                    "--workloads", "matmul,bandwidth,hash", "--out", out],
                   check=True, capture_output=True, env=env_with(threads))
    with open(os.path.join(out, "results.json")) as f:
        doc = json.load(f)
    return {m["name"]: m["value"] for m in doc["devices"][0]["metrics"]}


def openssl(multi):
    cmd = ["openssl", "speed", "-seconds", "2", "-bytes", "16384", "-evp", "sha256"]
    if multi > 1:
        cmd[2:2] = ["-multi", str(multi)]
    text = run(cmd, env_with(1))
    # last line: "sha256  <bytes/s in k>"; numbers in 1000s of bytes per second
    line = [l for l in text.splitlines() if l.lower().startswith("sha256")][-1]
    kbytes = float(re.findall(r"([\d.]+)k", line)[-1])
    return kbytes * 1000 / 64 / 1e6  # million compressions per second


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work", required=True)
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--triad", required=True)
    ap.add_argument("--overhead", required=True)
    a = ap.parse_args()
    cores = os.cpu_count() or 1
    n, elems = 2048, 16 << 20  # kiln quick: matmul n=2048, 128 MiB bandwidth buffers
    rows = {}

    def add(name, unit, kiln_v, ref_v, ref_name):
        r = rows.setdefault(name, {"unit": unit, "kiln": [], "ref": [], "ref_name": ref_name})
        r["kiln"].append(kiln_v)
        r["ref"].append(ref_v)

    blas_info = None
    cvs = {}

    def rows_unit(name):
        return "GFLOP/s" if name.startswith("matmul") else "GB/s"

    for rnd in range(a.rounds):
        for threads in sorted({1, cores}):
            k = kiln_run(a.kiln, a.work, f"r{rnd}t{threads}", threads)
            for dt, name in (("float32", "matmul_fp32"), ("float64", "matmul_fp64")):
                out = run([sys.executable, "-c", NUMPY_GEMM, str(n), dt, "5"], env_with(threads)).split(" ", 1)
                blas_info = out[1].strip()
                add(f"{name} {threads}T", "GFLOP/s", k[name], float(out[0]), "OpenBLAS (numpy)")
            if threads == cores:
                copy = float(run([sys.executable, "-c", NUMPY_COPY, str(elems), "15"], env_with(threads)))
                add(f"bw_copy {threads}T", "GB/s", k["bw_copy"], copy, "numpy.copyto (memcpy)")
                triad = float(run([a.triad, str(elems), "15"], env_with(threads)))
                add(f"bw_triad {threads}T", "GB/s", k["bw_triad"], triad, "C triad, gcc -O3 -fopenmp")
            if threads == cores:
                alone = {}
                for w in ("matmul", "bandwidth"):
                    for line in run([a.overhead, w], env_with(threads)).splitlines():
                        name, value, cv = line.split()
                        alone[name] = (float(value), float(cv))
                for name in ("matmul_fp32", "bw_copy", "bw_triad"):
                    add(f"{name} in run", rows_unit(name), k[name], alone[name][0], "same workload alone (no runner)")
                    cvs.setdefault(name, []).append(alone[name][1])
            comp = k["sha256d"] * 2  # 2 compressions per nonce
            add(f"sha256 {threads}T", "M compressions/s", comp, openssl(threads), "openssl speed -evp sha256")
        print(f"round {rnd + 1}/{a.rounds} done", file=sys.stderr)

    print(f"machine: {os.uname().nodename}, {cores} cores; OpenBLAS: {blas_info}")
    print(f"{'metric':<18} {'unit':<17} {'kiln':>9} {'reference':>10} {'ratio':>6}  reference")
    for name, r in rows.items():
        km, rm = statistics.median(r["kiln"]), statistics.median(r["ref"])
        print(f"{name:<18} {r['unit']:<17} {km:>9.2f} {rm:>10.2f} {km / rm:>6.2f}  {r['ref_name']}")
    for name, v in cvs.items():
        print(f"coefficient of variation of {name} over its iterations (workload alone): median {100 * statistics.median(v):.2f} %")


if __name__ == "__main__":
    main()
