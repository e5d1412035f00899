"""Pinned numeric kernels (execution/kernels.py): every process of the harness runs numpy, OpenBLAS and torch
with AVX2 kernels, whatever wider extension the CPU has, unless told otherwise."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from execution.kernels import NATIVE_FLAG, PINNED_ENVIRONMENT, cpu_flags, kernels_in_use

X86_AVX2 = platform.machine() == "x86_64" and {"avx2", "fma"} <= cpu_flags()
AVX512 = X86_AVX2 and "avx512f" in cpu_flags()
needs_avx2 = pytest.mark.skipif(not X86_AVX2, reason="the pin applies to x86-64 CPUs with AVX2 and FMA")

REPORT = "import json, lumina, numpy, scipy.linalg, torch; from execution.kernels import kernels_in_use; " \
         "print(json.dumps(kernels_in_use()))"


def unpinned_environment() -> dict[str, str]:
    """This process's environment without the pin's variables and the opt-out flag."""
    return {k: v for k, v in os.environ.items() if k not in PINNED_ENVIRONMENT and k != NATIVE_FLAG}


def kernels_of_a_fresh_process(**environment: str) -> dict[str, str]:
    """kernels_in_use() of a new interpreter that imports lumina first, with `environment` on top of a clean one."""
    out = subprocess.run([sys.executable, "-c", REPORT], env={**unpinned_environment(), **environment},
                         capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


@needs_avx2
def test_a_process_importing_the_harness_runs_avx2_kernels():
    assert kernels_of_a_fresh_process() == {"numpy": "X86_V3", "torch": "AVX2", "openblas": "Haswell"}


@needs_avx2
def test_the_test_session_itself_is_pinned():
    """conftest imports the harness before numpy: a plugin loading numpy first would leave this process native."""
    assert kernels_in_use()["numpy"] == "X86_V3"
    assert kernels_in_use().get("torch", "AVX2") == "AVX2"


@needs_avx2
def test_a_variable_the_user_set_is_kept():
    kernels = kernels_of_a_fresh_process(ATEN_CPU_CAPABILITY="default")
    assert kernels["torch"] == "DEFAULT" and kernels["numpy"] == "X86_V3"


@pytest.mark.skipif(not AVX512, reason="native kernels differ from the pinned ones only on AVX-512 CPUs")
def test_the_native_flag_keeps_each_librarys_own_choice():
    kernels = kernels_of_a_fresh_process(**{NATIVE_FLAG: "1"})
    assert kernels["numpy"] == "X86_V4" and kernels["torch"] == "AVX512"


@pytest.mark.skipif(not AVX512, reason="numpy runs wider kernels than the pin only on AVX-512 CPUs")
def test_importing_numpy_before_the_harness_is_warned_about():
    env = unpinned_environment()
    run = subprocess.run([sys.executable, "-c", "import numpy, lumina"], env=env, capture_output=True, text=True,
                         check=True)
    assert "numpy loaded before the harness and runs AVX-512 kernels" in run.stderr
    quiet = subprocess.run([sys.executable, "-c", "import lumina, numpy"], env=env, capture_output=True, text=True,
                           check=True)
    assert "AVX-512" not in quiet.stderr
