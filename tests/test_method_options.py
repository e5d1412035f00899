"""Every method's options: the YAML in conf/method equals the dataclass defaults, and unknown keys fail."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lumina.methods import METHODS
from lumina.methods.options import METHOD_OPTIONS, SegmentOptions, options_for
from lumina.runs.errors import ParameterError

CONF = Path(__file__).resolve().parents[1] / "conf"


def composed(name: str, *overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"+method={name}", *overrides])
    return OmegaConf.to_container(cfg.method, resolve=True)


def test_every_registered_method_has_options():
    assert set(METHOD_OPTIONS) == set(METHODS)


@pytest.mark.parametrize("name", sorted(METHOD_OPTIONS))
def test_yaml_equals_dataclass_defaults(name):
    yaml = composed(name)
    defaults = METHOD_OPTIONS[name]()
    assert set(yaml) == {f.name for f in fields(defaults)}
    assert options_for(name, yaml) == defaults


@pytest.mark.parametrize("name", sorted(METHOD_OPTIONS))
def test_every_option_has_help(name):
    assert all(text.strip() for text in METHOD_OPTIONS[name].help().values())


def test_segment_options_are_shared_once():
    gradient_methods = [n for n, cls in METHOD_OPTIONS.items() if issubclass(cls, SegmentOptions)]
    assert sorted(gradient_methods) == ["factgrass", "gradcos", "graddot", "gradients", "logra", "tracin", "trak",
                                        "unlearning"]
    for name in gradient_methods:  # the shared block lives in conf/method_common, not in each method's file
        text = (CONF / "method" / f"{name}.yaml").read_text()
        assert "/method_common/segments@_here_" in text and "segment_s:" not in text


def test_overrides_reach_the_dataclass_and_unknown_keys_fail():
    options = options_for("trak", composed("trak", "method.proj_dim=64", "method.parameters=[0,1]"))
    assert options.proj_dim == 64 and options.parameters == (0, 1)
    with pytest.raises(ParameterError, match="unknown option.*method.prj_dim"):
        options_for("trak", {**composed("trak"), "prj_dim": 3})
