"""The one builder of generators: a `model` config → a `GeneratorLoader` (docs/architecture.md#the-generator-protocol).

Apps, reports, the signature store, subset studies and the ground truth all load generators through
`model_loader`: `load()` gives the generator under attribution (trained and cached by its recipe, or loaded from a
checkpoint folder), `load(train_ids)` the same recipe trained on a subset (retrainable recipes only), and
`prepare()` makes what every subset model shares once (the embedded recipe's codec and codes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lumina.data.manifest import Manifest
from lumina.models.architectures import build_architecture
from lumina.models.codes import encode_tracks
from lumina.models.embedded_recipe import EmbeddedModelConfig, fit_codec, train_embedded
from lumina.models.musicgen import MusicgenGenerator
from lumina.models.protocol import Generator, GeneratorLoader
from lumina.runs.device import REFERENCE, Placement
from lumina.runs.errors import ParameterError


def model_loader(model: Mapping[str, Any], manifest: Manifest, cache: Path, *, progress: bool = True,
                 placement: Placement = REFERENCE) -> GeneratorLoader:
    """`generator_loader` from a plain `model` config (what worker processes receive); the generator is
    trained and loaded on `placement` (the `device` and `dtype` settings)."""
    kind = model.get("kind")
    if kind == "musictransformer":
        return _MusicTransformerLoader(dict(model), manifest, Path(cache), progress, placement)
    if kind not in ("embedded", "pretrained", "architecture"):
        raise ParameterError(f"model.kind must be 'embedded', 'pretrained', 'architecture' or 'musictransformer', "
                             f"got {kind!r}")
    return _MusicgenLoader(dict(model), manifest, Path(cache), progress, placement)


@dataclass
class _Loader:
    """What every `GeneratorLoader` holds: the plain `model` config, the corpus, the cache root, whether to show
    progress, and where the generator is trained and loaded."""

    model: dict[str, Any]
    manifest: Manifest
    cache: Path
    progress: bool
    placement: Placement = REFERENCE


class _MusicgenLoader(_Loader):
    """The `GeneratorLoader` of the audio generators: the embedded recipe (retrainable) or a checkpoint folder."""

    def __call__(self, train_ids: Sequence[str] | None = None) -> Generator:
        if self.model["kind"] == "embedded":
            return train_embedded(self.manifest, EmbeddedModelConfig.from_dict(self.model), self.cache,
                                  train_ids=train_ids, name=str(self.model["name"]), progress=self.progress,
                                  placement=self.placement)
        if train_ids is not None:
            raise ParameterError(
                f"{self.model.get('path', self.model['name'])}: a pretrained checkpoint or a random architecture "
                "cannot be retrained on a subset here; retraining needs the embedded default (model=embedded)"
            )
        if self.model["kind"] == "architecture":
            return build_architecture(self.model, self.manifest.table["description"], placement=self.placement)
        return MusicgenGenerator.load(self.model["path"], self.placement)

    def prepare(self) -> None:
        if self.model["kind"] == "embedded":
            config = EmbeddedModelConfig.from_dict(self.model)
            codec = fit_codec(self.manifest, config.codec, self.cache, progress=self.progress)
            encode_tracks(codec, self.manifest, self.manifest.table["track_id"].tolist(), self.cache,
                          progress=self.progress)


class _MusicTransformerLoader(_Loader):
    """The `GeneratorLoader` of the symbolic generator (docs/symbolic.md#the-generator): its recipe (retrainable)
    when `path` is null, else a checkpoint directory (this harness's layout or dattri's benchmark layout)."""

    def __call__(self, train_ids: Sequence[str] | None = None) -> Generator:
        from lumina.models.music_transformer import MusicTransformerConfig, MusicTransformerGenerator
        from lumina.models.music_transformer_recipe import train_symbolic

        if not self.model.get("path"):
            return train_symbolic(self.manifest, MusicTransformerConfig.from_dict(self.model), self.cache,
                                  train_ids=train_ids, name=str(self.model["name"]), progress=self.progress,
                                  placement=self.placement)
        if train_ids is not None:
            raise ParameterError(f"{self.model['path']}: a loaded checkpoint cannot be retrained on a subset; "
                                 "retraining experiments need the recipe (model.path=null)")
        return MusicTransformerGenerator.load(self.model["path"], self.placement)

    def prepare(self) -> None:
        from lumina.data.midi import EventTokenizer

        encode_tracks(EventTokenizer(), self.manifest, self.manifest.table["track_id"].tolist(), self.cache,
                      progress=self.progress)
