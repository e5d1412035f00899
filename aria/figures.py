"""Leaderboard figures: energy spectrum per setting, K-sweep per channel, original vs residual z.

Each takes the diagnostics dicts of `aria.diagnose.diagnose` and writes a PNG whose metadata records the
command that made it; the per-channel figures draw one panel per channel of a `ChannelSet` (default `AUDIO`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from aria.channels import AUDIO, ChannelSet  # noqa: E402


def _label(d: dict) -> str:
    return f"{d['method']}/{d['setting']}" + (" (collapsed)" if d["collapsed"] else "")


def _save(fig: plt.Figure, path: Path, command: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": "aria", "Description": f"made by: {command}"})
    plt.close(fig)
    return path


def _channel_axes(channel_set: ChannelSet) -> tuple[plt.Figure, np.ndarray]:
    """One panel per channel, side by side, sharing the z axis → the figure and its (n_channels,) axes."""
    n = len(channel_set.names)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.8), sharey=True, squeeze=False)
    return fig, axes[0]


def energy_figure(diagnostics: Sequence[dict], path: str | Path, command: str, *, n_components: int = 20) -> Path:
    """Energy ratios e_k (log scale, drawn no lower than 1e-6) of the first `n_components` singular values,
    one line per setting."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for d in diagnostics:
        e = np.asarray(d["energy"][:n_components], dtype=float)
        ax.plot(np.arange(1, len(e) + 1), np.clip(e, 1e-6, None), marker="o", ms=3,
                ls="--" if d["collapsed"] else "-", label=_label(d))
    ax.set_yscale("log")
    ax.set_xlabel("singular component k")
    ax.set_ylabel(r"energy ratio $e_k = \sigma_k^2 / \|S\|_F^2$")
    ax.set_title("Energy spectrum of the raw score matrix")
    ax.legend(fontsize=7)
    return _save(fig, Path(path), command)


def ksweep_figure(
    diagnostics: Sequence[dict], path: str | Path, command: str, *, channel_set: ChannelSet = AUDIO
) -> Path:
    """Mean z against K for each channel of `channel_set` (original stage), one line per setting."""
    fig, axes = _channel_axes(channel_set)
    for ax, channel in zip(axes, channel_set.names, strict=True):
        for d in diagnostics:
            stage = d["homogeneity"]["original"]
            ks = [int(k) for k in stage if channel in stage[k]["channels"]]
            z = [stage[str(k)]["channels"][channel]["z_mean"] for k in ks]
            ax.plot(ks, [np.nan if v is None else v for v in z], marker="o",
                    ls="--" if d["collapsed"] else "-", label=_label(d))
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_xticks(sorted({int(k) for d in diagnostics for k in d["ks"]}))
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_title(channel_set.titles[channel])
        ax.set_xlabel("group size K")
    axes[0].set_ylabel(r"mean $z$ over queries")
    axes[-1].legend(fontsize=7)
    return _save(fig, Path(path), command)


def residual_figure(
    diagnostics: Sequence[dict], path: str | Path, command: str, k: int, *, channel_set: ChannelSet = AUDIO
) -> Path:
    """Mean z of each channel of `channel_set` at K = k before (original) and after rank-1 removal (residual)."""
    fig, axes = _channel_axes(channel_set)
    x = np.arange(len(diagnostics))
    for ax, channel in zip(axes, channel_set.names, strict=True):
        for offset, stage in ((-0.2, "original"), (0.2, "residual")):
            values = []
            for d in diagnostics:
                entry = d["homogeneity"][stage].get(str(k), {}).get("channels", {}).get(channel, {})
                values.append(np.nan if entry.get("z_mean") is None else entry["z_mean"])
            ax.bar(x + offset, values, width=0.4, label=stage)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xticks(x, [_label(d) for d in diagnostics], rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{channel_set.titles[channel]} (K = {k})")
    axes[0].set_ylabel(r"mean $z$ over queries")
    axes[-1].legend(fontsize=7)
    return _save(fig, Path(path), command)
