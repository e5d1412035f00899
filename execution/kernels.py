"""One instruction set for the numeric kernels, so that a CPU result's bits agree across x86-64 machine classes.

numpy, OpenBLAS (numpy's and scipy's), torch's ATen, MKL and oneDNN each pick their vectorised kernels from the
CPU they find: on an AVX-512 machine they run other loops than on an AVX2 one, and the last bits of sums
differ. The embedded codec's k-means turns those bits into other centroids and everything trained on its codes
follows (measured: on an AMD EPYC with AVX-512 the codec of seed 0 came out `a2c5f4079457be00` natively and
`c58ee9185b97c4a7`, the AVX2 machines' codec, with the kernels pinned; numpy's or OpenBLAS's pin alone gave two
further codecs). `pin_kernels()` caps every library at AVX2 through the environment variables it reads when
it loads, so it must run before numpy or torch is imported: every package of the harness calls it first.

A variable the user has set is kept; `LUMINA_NATIVE_KERNELS=1` keeps each library's own choice (not
bit-identical to the committed results). CPUs without AVX2 and FMA, and non-x86 CPUs, are left
alone. `kernels_in_use()` reports what the libraries actually picked; every output's provenance records it.
"""

from __future__ import annotations

import os
import platform
import sys
import warnings
from pathlib import Path

PINNED_ENVIRONMENT = {
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # numpy's AVX-512 loops (numpy >= 2.4 names)
    "OPENBLAS_CORETYPE": "Haswell",  # OpenBLAS's AVX2 kernels, in numpy's and scipy's builds
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's vectorised operators
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # torch's BLAS
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # torch's oneDNN primitives
}
"""The variables `pin_kernels` sets (when unset) and the value each takes."""

NATIVE_FLAG = "LUMINA_NATIVE_KERNELS"


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return set()
    for line in cpuinfo.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def pin_kernels() -> None:
    """Set the variables of `PINNED_ENVIRONMENT` that are unset, on x86-64 CPUs with AVX2 and FMA, unless
    `LUMINA_NATIVE_KERNELS=1`. Warns when numpy or torch was imported before and already runs wider kernels."""
    if os.environ.get(NATIVE_FLAG) == "1" or platform.machine() not in ("x86_64", "AMD64"):
        return
    if not {"avx2", "fma"} <= cpu_flags():
        return
    for name, value in PINNED_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    unpinned = {lib: isa for lib, isa in kernels_in_use().items() if isa in ("X86_V4", "AVX512")}
    if unpinned:
        warnings.warn(f"{', '.join(unpinned)} loaded before the harness and runs AVX-512 kernels: results will not "
                      f"be bit-identical to other machine classes; import lumina (or aria, groundtruth, execution) "
                      f"before numpy and torch, or set {NATIVE_FLAG}=1 to accept native kernels", stacklevel=2)


def kernels_in_use() -> dict[str, str]:
    """The kernel family each loaded numeric library picked: numpy's widest enabled dispatch target, torch's
    CPU capability and OpenBLAS's core type per build (libraries not yet imported are not reported)."""
    report: dict[str, str] = {}
    if "numpy" in sys.modules:
        from numpy._core._multiarray_umath import __cpu_features__

        targets = [t for t in ("X86_V4", "X86_V3", "X86_V2", "ASIMD") if __cpu_features__.get(t)]
        report["numpy"] = targets[0] if targets else "baseline"
    if "torch" in sys.modules:
        report["torch"] = sys.modules["torch"].backends.cpu.get_cpu_capability()
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return report
    cores = sorted({str(lib.get("architecture")) for lib in threadpool_info() if lib.get("internal_api") == "openblas"})
    if cores:
        report["openblas"] = "/".join(cores)
    return report
