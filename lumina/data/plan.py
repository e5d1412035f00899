"""The embedded corpus's design: which piece is rendered with which program, tempo and mix, as track specs.

A track spec is a plain dict (picklable, JSON-able) holding everything needed to render one file:
track_id, split, piece, collection, word (the collection's description word), program, instrument,
instrument_family, tempo_factor, transpose, offset_s, soundfont (`main` | `alt`), effect
(`""` | `eq` | `reverb` | `noise`), query_kind, source_ids (list), variant, rng_seed (list of ints).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pretty_midi

from lumina.data.music21_pieces import SECONDS_PER_QUARTER
from lumina.runs.errors import ParameterError

Piece = tuple[str, str]
"""(corpus path, collection)"""

NEAR_COPY_VARIANT = re.compile(
    r"soundfont|eq|reverb|noise|offset\+(?P<offset>\d+(\.\d+)?)s|tempo(?P<tempo>[+-]\d+(\.\d+)?)%"
)
COMPOSITION_VARIANT = re.compile(r"instrument(?P<tempo>\+tempo)?(\+transpose(?P<transpose>[+-]\d+))?")


def instrument_name(program: int) -> str:
    """Lower-case words of a GM program's name: 24 → `acoustic guitar nylon`."""
    return " ".join(re.findall(r"[a-z0-9]+", pretty_midi.program_to_instrument_name(program).lower()))


def instrument_family(program: int) -> str:
    """Lower-case GM family of a program: 40 → `strings`."""
    return pretty_midi.program_to_instrument_class(program).lower()


def near_copy_change(variant: str) -> dict:
    """What a near-copy variant changes: {"soundfont"|"effect"|"offset_s"|"tempo_scale": value}."""
    match = NEAR_COPY_VARIANT.fullmatch(variant)
    if match is None:
        raise ParameterError(
            f"unknown near-copy variant {variant!r}; use soundfont, eq, reverb, noise, offset+<s>s or tempo±<p>%"
        )
    if variant == "soundfont":
        return {"soundfont": "alt"}
    if match["offset"]:
        return {"offset_s": float(match["offset"])}
    if match["tempo"]:
        return {"tempo_scale": 1.0 + float(match["tempo"]) / 100.0}
    return {"effect": variant}


def composition_change(variant: str) -> tuple[bool, int]:
    """(changes tempo, transpose in semitones) of a composition variant such as `instrument+transpose-2`."""
    match = COMPOSITION_VARIANT.fullmatch(variant)
    if match is None:
        raise ParameterError(
            f"unknown composition variant {variant!r}; use instrument, instrument+tempo, instrument+transpose±<n>"
        )
    return bool(match["tempo"]), int(match["transpose"] or 0)


def required_quarters(cfg: Mapping) -> float:
    """Length in quarter notes every piece needs: the track plus the largest near-copy offset change, at the
    fastest tempo any track may get."""
    changes = [near_copy_change(v) for v in cfg["near_copy_variants"]]
    offset = max([c.get("offset_s", 0.0) for c in changes], default=0.0)
    speedup = max([c.get("tempo_scale", 1.0) for c in changes] + [1.0])
    return (float(cfg["track_s"]) + offset) * max(cfg["tempo_factors"]) * speedup / SECONDS_PER_QUARTER


def role_counts(cfg: Mapping) -> dict[str, int]:
    """How many distinct pieces each role needs, in the order pieces are handed out."""
    return {
        "train": int(cfg["train_pieces"]),
        "production": int(cfg["queries"]["production"]),
        "held_out": int(cfg["queries"]["held_out"]),
        "control": int(cfg["control_tracks"]),
        "sample": int(cfg["queries"].get("sample", 0)),
    }


def check_design(cfg: Mapping) -> None:
    """Raise `ParameterError` for a design that cannot be built."""
    programs = list(cfg["train_programs"])
    unseen = set(cfg["held_out_programs"]) | set(cfg["control_programs"])
    if len(set(programs)) != len(programs) or set(programs) & unseen:
        raise ParameterError("train_programs must be distinct and disjoint from held_out/control programs")
    if not 1 <= int(cfg["renderings_per_piece"]) < len(programs):
        raise ParameterError("renderings_per_piece must be at least 1 and below the number of train_programs "
                             "(composition queries need a training program a piece was not rendered with)")
    if int(cfg["train_pieces"]) < 1 or not cfg["tempo_factors"]:
        raise ParameterError("train_pieces must be at least 1 and tempo_factors non-empty")
    for kind, variants in (("near_copy", "near_copy_variants"), ("composition", "composition_variants")):
        if int(cfg["queries"][kind]) > 0 and not cfg[variants]:
            raise ParameterError(f"{variants} is empty but {kind} queries are asked for")
    for name in ("held_out", "control"):
        count = int(cfg["queries"]["held_out"]) if name == "held_out" else int(cfg["control_tracks"])
        if count > 0 and not cfg[f"{name}_programs"]:
            raise ParameterError(f"{name}_programs is empty but {count} {name} tracks are asked for")
    if not 0 < float(cfg.get("sample_s", 3.0)) < float(cfg["track_s"]):
        raise ParameterError("sample_s must lie strictly between 0 and track_s")
    if int(cfg["queries"].get("out_of_domain", 0)) > 0 and not cfg.get("out_of_domain_textures"):
        raise ParameterError("out_of_domain_textures is empty but out_of_domain queries are asked for")
    for variant in cfg["near_copy_variants"]:
        near_copy_change(variant)
    for variant in cfg["composition_variants"]:
        composition_change(variant)


def track_spec(track_id: str, split: str, piece: Piece, program: int, tempo_factor: float, words: Mapping,
               seed: int, index: int, **extra: object) -> dict:
    """A track spec with the defaults of a plain rendering (offset 0, no transposition, main soundfont)."""
    spec = {
        "track_id": track_id, "split": split, "piece": piece[0], "collection": piece[1],
        "word": words[piece[1]], "program": int(program), "instrument": instrument_name(program),
        "instrument_family": instrument_family(program), "tempo_factor": float(tempo_factor), "transpose": 0,
        "offset_s": 0.0, "soundfont": "main", "effect": "", "query_kind": "", "source_ids": [], "variant": "",
        "rng_seed": [int(seed), 99, index],
    }
    spec.update(extra)
    return spec


def least_used(options: Sequence, usage: Mapping, rng: np.random.Generator, count: int) -> list:
    """The `count` options with the lowest usage, ties broken at random."""
    keys = rng.random(len(options))
    order = sorted(range(len(options)), key=lambda i: (usage[options[i]], keys[i]))
    return [options[i] for i in order[:count]]


def training_design(cfg: Mapping, pieces: Sequence[Piece], rng: np.random.Generator) -> list[dict]:
    """Training specs: each piece rendered `renderings_per_piece` times with distinct programs; programs and
    (program, tempo factor) pairs used as evenly as possible."""
    programs = [int(p) for p in cfg["train_programs"]]
    tempos = [float(t) for t in cfg["tempo_factors"]]
    program_use = dict.fromkeys(programs, 0)
    tempo_use = {(p, t): 0 for p in programs for t in tempos}
    specs = []
    for piece in pieces:
        for program in least_used(programs, program_use, rng, int(cfg["renderings_per_piece"])):
            program_use[program] += 1
            tempo = least_used(tempos, {t: tempo_use[program, t] for t in tempos}, rng, 1)[0]
            tempo_use[program, tempo] += 1
            index = len(specs)
            specs.append(track_spec(f"t{index:04d}", "train", piece, program, tempo, cfg["collections"],
                                    cfg["seed"], index))
    return specs


def near_copy_queries(cfg: Mapping, train: list[dict], piece_order: list[str],
                      rng: np.random.Generator) -> list[dict]:
    """Near-copy queries: a training track (one per piece, pieces in `piece_order`) with one mix change."""
    by_piece = {}
    for spec in train:
        by_piece.setdefault(spec["piece"], []).append(spec)
    queries = []
    for j in range(int(cfg["queries"]["near_copy"])):
        renderings = by_piece[piece_order[j % len(piece_order)]]
        source = renderings[int(rng.integers(len(renderings)))]
        variant = cfg["near_copy_variants"][j % len(cfg["near_copy_variants"])]
        change = near_copy_change(variant)
        spec = dict(source, track_id=f"q_near_copy_{j:02d}", split="query", query_kind="near_copy",
                    source_ids=[source["track_id"]], variant=variant, rng_seed=[int(cfg["seed"]), 1, j])
        spec["offset_s"] = source["offset_s"] + change.get("offset_s", 0.0)
        spec["tempo_factor"] = round(source["tempo_factor"] * change.get("tempo_scale", 1.0), 6)
        spec["soundfont"] = change.get("soundfont", "main")
        spec["effect"] = change.get("effect", "")
        queries.append(spec)
    return queries


def composition_queries(cfg: Mapping, train: list[dict], piece_order: list[str],
                        rng: np.random.Generator) -> list[dict]:
    """Composition queries: a training piece re-rendered with a training program it was not rendered with;
    variants may also change the tempo factor (to one the piece was not rendered at, where there is one)
    or transpose."""
    by_piece = {}
    for spec in train:
        by_piece.setdefault(spec["piece"], []).append(spec)
    programs = [int(p) for p in cfg["train_programs"]]
    tempos = [float(t) for t in cfg["tempo_factors"]]
    queries = []
    for j in range(int(cfg["queries"]["composition"])):
        renderings = by_piece[piece_order[j % len(piece_order)]]
        variant = cfg["composition_variants"][j % len(cfg["composition_variants"])]
        new_tempo, transpose = composition_change(variant)
        used = {s["program"] for s in renderings}
        program = int(rng.choice([p for p in programs if p not in used]))
        tempo = renderings[0]["tempo_factor"]
        if new_tempo:
            unused = [t for t in tempos if t not in {s["tempo_factor"] for s in renderings}]
            others = unused or [t for t in tempos if t != tempo] or [tempo]
            tempo = float(rng.choice(others))
        first = renderings[0]
        queries.append(track_spec(
            f"q_composition_{j:02d}", "query", (first["piece"], first["collection"]), program, tempo,
            cfg["collections"], cfg["seed"], 1000 + j, transpose=transpose, query_kind="composition",
            source_ids=[s["track_id"] for s in renderings], variant=variant,
        ))
    return queries


def production_queries(cfg: Mapping, train: list[dict], pieces: Sequence[Piece],
                       rng: np.random.Generator) -> list[dict]:
    """Production queries: an unseen piece with the (program, tempo factor) of training tracks, which are
    its sources."""
    combos = sorted({(s["program"], s["tempo_factor"]) for s in train})
    order = rng.permutation(len(combos))
    queries = []
    for j, piece in enumerate(pieces):
        program, tempo = combos[int(order[j % len(combos)])]
        sources = [s["track_id"] for s in train if (s["program"], s["tempo_factor"]) == (program, tempo)]
        queries.append(track_spec(
            f"q_production_{j:02d}", "query", piece, program, tempo, cfg["collections"], cfg["seed"], 2000 + j,
            query_kind="production", source_ids=sources, variant="piece",
        ))
    return queries


def unseen_tracks(cfg: Mapping, pieces: Sequence[Piece], programs: Sequence[int], kind: str,
                  rng: np.random.Generator) -> list[dict]:
    """Held-out queries (`kind="held_out"`) or control tracks (`kind="control"`): unseen pieces with
    programs never used in training, cycled; tempo factors drawn from the set."""
    specs = []
    for j, piece in enumerate(pieces):
        tempo = float(rng.choice([float(t) for t in cfg["tempo_factors"]]))
        program = int(programs[j % len(programs)])
        if kind == "held_out":
            specs.append(track_spec(f"q_held_out_{j:02d}", "query", piece, program, tempo, cfg["collections"],
                                    cfg["seed"], 3000 + j, query_kind="held_out", variant="piece+instrument"))
        else:
            specs.append(track_spec(f"c{j:04d}", "control", piece, program, tempo, cfg["collections"],
                                    cfg["seed"], 4000 + j))
    return specs


def sample_queries(cfg: Mapping, train: list[dict], pieces: Sequence[Piece], rng: np.random.Generator) -> list[dict]:
    """Sample queries (the classic sampling case): an unseen piece, rendered with a held-out program, with
    `sample_s` seconds of one training track pasted into it; that track is the source. The spec's `sample`
    entry holds the source's spec and where the excerpt is cut from (`from_s`) and pasted (`at_s`)."""
    length, track_s = float(cfg.get("sample_s", 3.0)), float(cfg["track_s"])
    order = rng.permutation(len(train))
    queries = []
    for j, piece in enumerate(pieces):
        source = train[int(order[j % len(train)])]
        program = int(cfg["held_out_programs"][j % len(cfg["held_out_programs"])])
        tempo = float(rng.choice([float(t) for t in cfg["tempo_factors"]]))
        cut = {"source": source, "from_s": round(float(rng.uniform(0.0, track_s - length)), 3),
               "at_s": round(float(rng.uniform(0.0, track_s - length)), 3), "length_s": length}
        queries.append(track_spec(
            f"q_sample_{j:02d}", "query", piece, program, tempo, cfg["collections"], cfg["seed"], 5000 + j,
            query_kind="sample", source_ids=[source["track_id"]],
            variant=f"{length:g}s from {cut['from_s']:g}s at {cut['at_s']:g}s",
            sample=cut,
        ))
    return queries


def out_of_domain_queries(cfg: Mapping) -> list[dict]:
    """Out-of-domain queries: synthesised noise, tones, speech and textures (`lumina.data.textures`), cycled
    over `out_of_domain_textures`; no source, no piece. Their description names the texture."""
    textures = list(cfg.get("out_of_domain_textures", []))
    specs = []
    for j in range(int(cfg["queries"].get("out_of_domain", 0))):
        texture = textures[j % len(textures)]
        specs.append({
            "track_id": f"q_out_of_domain_{j:02d}", "split": "query", "piece": "", "collection": "",
            "word": "", "program": -1, "instrument": texture.replace("_", " "), "instrument_family": "",
            "tempo_factor": 1.0, "transpose": 0, "offset_s": 0.0, "soundfont": "main", "effect": "",
            "query_kind": "out_of_domain", "source_ids": [], "variant": texture, "texture": texture,
            "rng_seed": [int(cfg["seed"]), 6000 + j],
        })
    return specs


def plan_tracks(cfg: Mapping, pieces: Mapping[str, Sequence[Piece]]) -> list[dict]:
    """Every track spec of the corpus: training, then queries by kind, then control.

    `pieces` maps each role of `role_counts` to its distinct pieces.
    """
    rng = np.random.default_rng([int(cfg["seed"]), 1])
    train = training_design(cfg, pieces["train"], rng)
    train_pieces = [p for p, _ in pieces["train"]]
    order = [train_pieces[i] for i in rng.permutation(len(train_pieces))]
    n_near = int(cfg["queries"]["near_copy"])
    rotated = order[n_near % len(order):] + order[: n_near % len(order)]
    return (
        train
        + near_copy_queries(cfg, train, order, rng)
        + composition_queries(cfg, train, rotated, rng)
        + production_queries(cfg, train, pieces["production"], rng)
        + unseen_tracks(cfg, pieces["held_out"], cfg["held_out_programs"], "held_out", rng)
        + unseen_tracks(cfg, pieces["control"], cfg["control_programs"], "control", rng)
        + sample_queries(cfg, train, pieces.get("sample", []), rng)
        + out_of_domain_queries(cfg)
    )
