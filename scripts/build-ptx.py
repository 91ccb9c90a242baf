#!/usr/bin/env python3
"""Compile kiln's CUDA kernels (kernels/*.cu) to PTX with NVRTC.

NVRTC comes from the `nvidia-cuda-nvrtc-cu12` PyPI wheel (no CUDA toolkit and
no GPU needed); this script calls libnvrtc.so.12 through ctypes. Every
kernels/NAME.cu becomes kernels/ptx/NAME.ptx (or OUT/NAME.ptx with --out).

The headers the kernels include (kernels/*.cuh) are handed to NVRTC from
memory under their bare names, so no path of this machine ends up in the
PTX and the output is byte-for-byte reproducible for a given NVRTC version.

    python3 scripts/build-ptx.py [--out DIR] [--nvrtc PATH/libnvrtc.so.12]

scripts/check-kernels.sh installs the pinned wheels into a virtual
environment and runs this script with it; see kernels/README.md.
"""

import argparse
import ctypes
import glob
import os
import sys

# The virtual architecture the PTX targets: it JIT-compiles on sm_80 (A100)
# and every later GPU (sm_86, sm_89, sm_90 H100/H200, ...).
ARCH = "compute_80"

OPTIONS = [
    "--gpu-architecture=" + ARCH,
    "--std=c++17",
    "--device-as-default-execution-space",  # -default-device
    "--generate-line-info",  # -lineinfo: source lines for profilers
]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = os.path.join(REPO, "kernels")


def find_nvrtc():
    """libnvrtc.so.12 of the nvidia-cuda-nvrtc-cu12 wheel of this Python."""
    try:
        import nvidia.cuda_nvrtc  # namespace package installed by the wheel

        for base in nvidia.cuda_nvrtc.__path__:
            path = os.path.join(base, "lib", "libnvrtc.so.12")
            if os.path.exists(path):
                return path
    except ImportError:
        pass
    sys.exit(
        "build-ptx: libnvrtc.so.12 not found; install the nvidia-cuda-nvrtc-cu12 "
        "wheel (scripts/check-kernels.sh does) or pass --nvrtc"
    )


class Nvrtc:
    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        self.lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        major, minor = ctypes.c_int(), ctypes.c_int()
        self.check(self.lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "version")
        self.version = (major.value, minor.value)

    def check(self, status, what):
        if status != 0:
            msg = self.lib.nvrtcGetErrorString(status).decode()
            raise RuntimeError("nvrtc %s: %s" % (what, msg))

    def compile(self, name, source, headers, options):
        """PTX text of `source`, or raises with NVRTC's log."""
        prog = ctypes.c_void_p()
        names = list(headers)
        n = len(names)
        contents = (ctypes.c_char_p * n)(*[headers[h].encode() for h in names])
        includes = (ctypes.c_char_p * n)(*[h.encode() for h in names])
        self.check(
            self.lib.nvrtcCreateProgram(
                ctypes.byref(prog), source.encode(), name.encode(), n, contents, includes
            ),
            "create " + name,
        )
        try:
            opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
            status = self.lib.nvrtcCompileProgram(prog, len(options), opts)
            size = ctypes.c_size_t()
            self.check(self.lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)), "log size")
            log = ctypes.create_string_buffer(size.value)
            self.check(self.lib.nvrtcGetProgramLog(prog, log), "log")
            log = log.value.decode(errors="replace").strip()
            if status != 0:
                raise RuntimeError("%s failed to compile:\n%s" % (name, log))
            if log:
                # Warnings fail the build too: the kernels compile clean.
                raise RuntimeError("%s compiled with warnings:\n%s" % (name, log))
            self.check(self.lib.nvrtcGetPTXSize(prog, ctypes.byref(size)), "ptx size")
            ptx = ctypes.create_string_buffer(size.value)
            self.check(self.lib.nvrtcGetPTX(prog, ptx), "ptx")
            return ptx.value.decode()
        finally:
            self.lib.nvrtcDestroyProgram(ctypes.byref(prog))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(KERNELS, "ptx"), help="output folder")
    ap.add_argument("--nvrtc", help="path of libnvrtc.so.12 (default: the wheel's)")
    args = ap.parse_args()

    nvrtc = Nvrtc(args.nvrtc or find_nvrtc())
    headers = {}
    for path in sorted(glob.glob(os.path.join(KERNELS, "*.cuh"))):
        with open(path) as f:
            headers[os.path.basename(path)] = f.read()
    sources = sorted(glob.glob(os.path.join(KERNELS, "*.cu")))
    if not sources:
        sys.exit("build-ptx: no kernels/*.cu")
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    # NVRTC prefixes source and header names with the working directory, and
    # -lineinfo writes them into the PTX (.file): compile from "/" so the PTX
    # is the same whichever folder the repository is checked out in.
    os.chdir("/")
    for path in sources:
        name = os.path.basename(path)
        with open(path) as f:
            source = f.read()
        try:
            ptx = nvrtc.compile(name, source, headers, OPTIONS)
        except RuntimeError as e:
            sys.exit("build-ptx: %s" % e)
        out = os.path.join(out_dir, name[: -len(".cu")] + ".ptx")
        with open(out, "w") as f:
            f.write(ptx)
        shown = os.path.join(args.out, os.path.basename(out))
        print("build-ptx: %s -> %s (NVRTC %d.%d, %s)" % (name, shown, *nvrtc.version, ARCH))


if __name__ == "__main__":
    main()
