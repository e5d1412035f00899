"""Evidence-channel sets: which channels Aria reports, the features of each and how they are compared.

A `ChannelSet` is a value passed to the homogeneity, residual, alignment, diagnosis, leaderboard and figure
code (default `AUDIO`, the rhythm/harmony/timbre channels of `aria.features`). Another set (for instance
symbolic channels computed from MIDI) is passed the same way without changing `aria`; the leaderboard app
looks sets up by name in `CHANNEL_SETS` (`aria.channels=NAME`). See docs/aria.md#channel-sets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from aria.errors import ParameterError

SIMILARITIES = ("euclidean", "lcs", "precomputed")
"""Similarity kinds: `euclidean` = 1/(1 + standardised Euclidean distance) of a vector feature, `lcs` =
normalised longest common subsequence of a sequence feature (docs/aria.md#track-similarity), `precomputed` =
a (N, N) matrix the caller puts into the pool itself."""


@dataclass(frozen=True, eq=False)
class ChannelSet:
    """A named set of evidence channels.

    `channels`: channel → its feature names, channels and features in report order; `similarity`: feature →
    its similarity kind (one of `SIMILARITIES`), for every feature of `channels`; `titles`: channel → the
    title used in tables and figures. Channel names become column names (`{channel}_z`, …), so they are
    non-empty identifiers. The mappings are copied (features as tuples) at construction.
    """

    name: str
    channels: dict[str, tuple[str, ...]]
    similarity: dict[str, str]
    titles: dict[str, str]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ParameterError(f"a channel set needs a non-empty name, got {self.name!r}")
        if not isinstance(self.channels, Mapping) or not self.channels:
            raise ParameterError(f"channel set {self.name!r}: `channels` must map at least one channel to features")
        channels = {}
        for channel, features in self.channels.items():
            if not isinstance(channel, str) or not channel.isidentifier():
                raise ParameterError(f"channel set {self.name!r}: channel name {channel!r} is not an identifier")
            if isinstance(features, str) or not isinstance(features, Sequence) or not features:
                raise ParameterError(
                    f"channel set {self.name!r}: channel {channel!r} needs a non-empty sequence of feature names")
            features = tuple(features)
            if not all(isinstance(f, str) and f for f in features) or len(set(features)) != len(features):
                raise ParameterError(
                    f"channel set {self.name!r}: channel {channel!r} has empty or repeated features {features}")
            channels[channel] = features
        similarity = dict(self.similarity) if isinstance(self.similarity, Mapping) else None
        features = {f for fs in channels.values() for f in fs}
        if similarity is None or set(similarity) != features:
            given = set(similarity or {})
            raise ParameterError(
                f"channel set {self.name!r}: `similarity` must give a kind for exactly the channels' features; "
                f"missing {sorted(features - given)}, unknown {sorted(given - features)}")
        bad = {f: kind for f, kind in similarity.items() if kind not in SIMILARITIES}
        if bad:
            raise ParameterError(f"channel set {self.name!r}: similarity kinds {bad} are not among {SIMILARITIES}")
        titles = dict(self.titles) if isinstance(self.titles, Mapping) else {}
        if set(titles) != set(channels) or not all(isinstance(t, str) and t for t in titles.values()):
            raise ParameterError(
                f"channel set {self.name!r}: `titles` must give a non-empty title for exactly the channels "
                f"{list(channels)}, got {sorted(titles)}")
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "similarity", similarity)
        object.__setattr__(self, "titles", {c: titles[c] for c in channels})

    def _identity(self) -> tuple:
        return (self.name, tuple(self.channels.items()), tuple(sorted(self.similarity.items())),
                tuple(self.titles.items()))

    def __eq__(self, other: object) -> bool:
        """Equal when name, channels (in order), similarity kinds and titles are."""
        return isinstance(other, ChannelSet) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    @property
    def names(self) -> tuple[str, ...]:
        """The channel names, in report order."""
        return tuple(self.channels)

    @property
    def features(self) -> tuple[str, ...]:
        """Every feature of the set once, in report order."""
        return tuple(dict.fromkeys(f for fs in self.channels.values() for f in fs))

    @property
    def sequences(self) -> tuple[str, ...]:
        """The features compared as sequences (similarity `lcs`)."""
        return tuple(f for f in self.features if self.similarity[f] == "lcs")

    @property
    def key(self) -> str:
        """Identifies the set's content (name, channels, similarity kinds)."""
        text = json.dumps({"name": self.name, "channels": self.channels, "similarity": self.similarity})
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def restrict(self, available: Iterable[str]) -> ChannelSet:
        """The set with only the features in `available`; channels left without features are dropped."""
        available = set(available)
        channels = {c: tuple(f for f in fs if f in available) for c, fs in self.channels.items()}
        channels = {c: fs for c, fs in channels.items() if fs}
        if channels == self.channels:
            return self
        if not channels:
            raise ParameterError(
                f"channel set {self.name!r}: none of its features {list(self.features)} is available")
        return ChannelSet(self.name, channels, {f: k for f, k in self.similarity.items() if f in available},
                          {c: self.titles[c] for c in channels})

    def columns(self, suffixes: Sequence[str]) -> list[str]:
        """`{channel}_{suffix}` for every channel, then every suffix: the per-channel columns of a table."""
        return [f"{c}_{s}" for c in self.channels for s in suffixes]


AUDIO = ChannelSet(
    name="audio",
    channels={
        "rhythm": ("beat_intervals", "onset_intervals"),
        "harmony": ("chroma", "tonnetz", "chords"),
        "timbre": ("mfcc", "cqt"),
    },
    similarity={
        "beat_intervals": "euclidean", "onset_intervals": "euclidean", "chroma": "euclidean",
        "tonnetz": "euclidean", "chords": "lcs", "mfcc": "euclidean", "cqt": "euclidean",
    },
    titles={"rhythm": "Rhythmic", "harmony": "Harmonic", "timbre": "Timbral"},
)
"""The audio channels of the Aria paper, computed by `aria.features` (docs/aria.md#evidence-channel-features)."""

SYMBOLIC = ChannelSet(
    name="symbolic",
    channels={
        "melody": ("melodic_intervals",),
        "harmony": ("pitch_classes", "vertical_intervals"),
        "rhythm": ("rhythm_summary", "rhythmic_values"),
        "dynamic": ("dynamics",),
        "texture": ("polyphony", "pitch_range"),
    },
    similarity={
        "melodic_intervals": "euclidean", "pitch_classes": "euclidean", "vertical_intervals": "euclidean",
        "rhythm_summary": "euclidean", "rhythmic_values": "euclidean", "dynamics": "euclidean",
        "polyphony": "euclidean", "pitch_range": "euclidean",
    },
    titles={"melody": "Melodic", "harmony": "Harmonic", "rhythm": "Rhythmic", "dynamic": "Dynamic",
            "texture": "Textural"},
)
"""The five musical channels of the Aria paper's symbolic setting, computed from MIDI windows by `aria.symbolic`
(docs/symbolic.md#channels)."""

CHANNEL_SETS: dict[str, ChannelSet] = {"audio": AUDIO, "symbolic": SYMBOLIC}
"""The channel sets the leaderboard app knows by name (`aria.channels=NAME`)."""


def get_channel_set(name: str) -> ChannelSet:
    """The channel set registered as `name` in `CHANNEL_SETS`; `ParameterError` naming the known sets."""
    try:
        return CHANNEL_SETS[name]
    except (KeyError, TypeError):
        raise ParameterError(f"unknown channel set {name!r}; known sets: {sorted(CHANNEL_SETS)}") from None
