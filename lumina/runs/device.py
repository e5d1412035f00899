"""Where models run: the `device` and `dtype` settings (conf/config.yaml), resolved here and nowhere else.

`device`: `cpu`, `cuda` (the current GPU), `cuda:N` (GPU N) or `auto` (the GPU when one is visible, else the
CPU). `dtype`: the floating type of the generator's LM weights and activations, `float32` (the default and the
reference: same input and seed give the same bits on CPU), `bfloat16` or `float16` (GPU only). Losses are
always accumulated in float32 and every array leaving a model for the disk is float32 or wider
(`to_numpy`). No other module of the library names a device: they read `Generator.device` and move their
tensors there (a test scans the sources for device names).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lumina.runs.errors import ParameterError

DEVICES = ("cpu", "cuda", "cuda:N", "auto")
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(setting: str) -> torch.device:
    """The torch device of a `device` setting; ParameterError for an unknown name or a GPU that is not there."""
    setting = str(setting).strip().lower()
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cpu":
        return torch.device("cpu")
    if setting == "cuda" or (setting.startswith("cuda:") and setting[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ParameterError(f"device={setting}: no CUDA GPU is visible to torch here; use device=cpu or auto")
        index = int(setting[5:]) if ":" in setting else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise ParameterError(f"device={setting}: only {torch.cuda.device_count()} GPU(s) visible; "
                                 f"use cuda:0 … cuda:{torch.cuda.device_count() - 1}")
        return torch.device("cuda", index)
    raise ParameterError(f"device must be one of {', '.join(DEVICES)} (N a GPU index), got {setting!r}")


@dataclass(frozen=True)
class Placement:
    """Where a generator's model runs and in which floating type (the `device` and `dtype` settings)."""

    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ParameterError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        resolve_device(self.device)
        if self.dtype == "float16" and self.torch_device.type != "cuda":
            raise ParameterError("dtype=float16 needs a GPU (CPU float16 kernels are slow or missing); "
                                 "use dtype=bfloat16 or float32 on the CPU")

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def is_reference(self) -> bool:
        """True for CPU float32: the placement whose results are the bit-for-bit reference (cache keys keep
        their old values for it)."""
        return self.torch_device.type == "cpu" and self.dtype == "float32"

    @property
    def tag(self) -> str:
        """'' for the reference, else `@<device type>-<dtype>`: appended to the names of caches whose bits depend
        on the placement, so that CPU and GPU results never mix."""
        return "" if self.is_reference else f"@{self.torch_device.type}-{self.dtype}"

    def record(self) -> dict[str, str]:
        """The resolved placement for provenance and cache keys: {"device": "cuda:0", "dtype": "bfloat16"}."""
        return {"device": str(self.torch_device), "dtype": self.dtype}


REFERENCE = Placement()
"""CPU, float32: the default placement."""


def placement_of(device: torch.device, dtype: torch.dtype) -> Placement:
    """The placement a model is on (its parameters' device and floating type)."""
    names = {v: k for k, v in DTYPES.items()}
    if dtype not in names:
        raise ParameterError(f"a model in {dtype} has no dtype setting; use one of {', '.join(DTYPES)}")
    return Placement(str(device), names[dtype])


def placement_from(cfg: Mapping[str, Any]) -> Placement:
    """The placement of a run's configuration (top-level `device` and `dtype`; the defaults when absent)."""
    return Placement(str(cfg.get("device", REFERENCE.device)), str(cfg.get("dtype", REFERENCE.dtype)))


def configure_device(placement: Placement) -> None:
    """Deterministic GPU kernels where torch has them: cuBLAS needs a fixed workspace, set before CUDA starts;
    operations with no deterministic GPU kernel warn instead of failing."""
    if placement.torch_device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A model tensor as a host array: copied off the GPU, half types widened to float32 (numpy has no
    bfloat16); a CPU float32 tensor is returned as is, sharing memory."""
    tensor = tensor.detach()
    if tensor.dtype in (torch.bfloat16, torch.float16):
        tensor = tensor.float()
    return tensor.cpu().numpy()
