"""MIDI as events in the vocabulary of dattri's MusicTransformer benchmark (docs/symbolic.md#vocabulary), and the
tokenizer of the symbolic generator.

Vocabulary (390 tokens): note-on 0–127, note-off 128–255, time-shift 256–355 (10 ms … 1 s), velocity 356–387
(32 bins of 4), END 388, PAD 389. A note list is an int64 array (n, 4) of rows (start tick, end tick, pitch,
velocity), one tick = 10 ms. The encoder is the project's own: dattri's `encode_midi` returns an empty list for
MIDI without sustain-pedal events (every file music21 writes), which this one reads like any other.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from lumina.runs.errors import ParameterError

NOTE_ON, NOTE_OFF, TIME_SHIFT, VELOCITY = 0, 128, 256, 356
N_SHIFTS, N_VELOCITIES = 100, 32
END = 388
PAD = 389
VOCAB_SIZE = 390
TICK_S = 0.01
"""One time-shift step: 10 ms."""
VELOCITY_STEP = 4
"""Velocity bin b decodes to velocity 4 b (MIDI velocity v encodes to bin v // 4)."""


def quantise(starts_s: np.ndarray, ends_s: np.ndarray, pitches: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    """Notes in seconds → the canonical note list (n, 4) int64 (start tick, end tick, pitch, velocity).

    Times are rounded to 10 ms ticks (a note lasts at least one tick), velocities to their bin (4 b). A pitch
    sounds once at a time: notes of one pitch with the same start merge (the later end, the larger velocity);
    a note still sounding when the same pitch starts again ends there. Rows are sorted by (start, pitch).
    """
    start = np.rint(np.asarray(starts_s, dtype=np.float64) / TICK_S).astype(np.int64)
    end = np.maximum(np.rint(np.asarray(ends_s, dtype=np.float64) / TICK_S).astype(np.int64), start + 1)
    pitch = np.asarray(pitches, dtype=np.int64)
    velocity = (np.clip(np.asarray(velocities, dtype=np.int64), 0, 127) // VELOCITY_STEP) * VELOCITY_STEP
    if pitch.size and (pitch.min() < 0 or pitch.max() > 127):
        raise ParameterError(f"MIDI pitches must lie in 0..127, got {pitch.min()}..{pitch.max()}")
    rows: list[list[int]] = []
    last: dict[int, int] = {}
    for i in np.lexsort((pitch, start)):
        s, e, p, v = int(start[i]), int(end[i]), int(pitch[i]), int(velocity[i])
        if p in last and rows[last[p]][1] > s:
            previous = rows[last[p]]
            if previous[0] == s:
                previous[1], previous[3] = max(previous[1], e), max(previous[3], v)
                continue
            previous[1] = s
        last[p] = len(rows)
        rows.append([s, e, p, v])
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


def encode_notes(notes: np.ndarray) -> np.ndarray:
    """Canonical notes (n, 4) → events (T,) int64, starting at tick 0.

    At one tick, note-offs come before note-ons, each in pitch order; a velocity event precedes a note-on
    whose velocity bin differs from the last one emitted; gaps become time shifts of at most 1 s each.
    """
    notes = np.asarray(notes, dtype=np.int64).reshape(-1, 4)
    moments = [(int(e), 0, int(p), 0) for _, e, p, _ in notes] + [(int(s), 1, int(p), int(v)) for s, _, p, v in notes]
    events: list[int] = []
    now, bin_now = 0, -1
    for tick, is_on, pitch, velocity in sorted(moments):
        gap = tick - now
        while gap > 0:
            step = min(gap, N_SHIFTS)
            events.append(TIME_SHIFT + step - 1)
            gap -= step
        now = tick
        if is_on:
            if velocity // VELOCITY_STEP != bin_now:
                bin_now = velocity // VELOCITY_STEP
                events.append(VELOCITY + bin_now)
            events.append(NOTE_ON + pitch)
        else:
            events.append(NOTE_OFF + pitch)
    return np.array(events, dtype=np.int64)


def decode_events(events: np.ndarray) -> np.ndarray:
    """Events (T,) → notes (n, 4) sorted by (start, pitch). A note-off without its note-on, a note-on never
    closed, END and PAD are ignored; before the first velocity event the velocity is 0 (as in dattri)."""
    now, velocity = 0, 0
    open_notes: dict[int, tuple[int, int]] = {}
    rows = []
    for token in np.asarray(events, dtype=np.int64).ravel():
        token = int(token)
        if NOTE_ON <= token < NOTE_OFF:
            open_notes[token] = (now, velocity)
        elif NOTE_OFF <= token < TIME_SHIFT:
            pitch = token - NOTE_OFF
            if pitch in open_notes:
                start, vel = open_notes.pop(pitch)
                if now > start:
                    rows.append((start, now, pitch, vel))
        elif TIME_SHIFT <= token < VELOCITY:
            now += token - TIME_SHIFT + 1
        elif VELOCITY <= token < END:
            velocity = (token - VELOCITY) * VELOCITY_STEP
    rows.sort(key=lambda r: (r[0], r[2]))
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


def read_midi(path: str | Path) -> np.ndarray:
    """The canonical notes (n, 4) of every non-drum instrument of a MIDI file (pedal events are not applied)."""
    import pretty_midi

    path = Path(path)
    try:
        midi = pretty_midi.PrettyMIDI(str(path))
    except Exception as err:  # mido/pretty_midi raise many types for a broken file
        raise ParameterError(f"{path}: cannot read MIDI ({type(err).__name__}: {err}); check the file") from None
    notes = [n for inst in midi.instruments if not inst.is_drum for n in inst.notes]
    return quantise(np.array([n.start for n in notes]), np.array([n.end for n in notes]),
                    np.array([n.pitch for n in notes]), np.array([n.velocity for n in notes]))


def write_midi(notes: np.ndarray, path: str | Path, program: int = 0) -> Path:
    """Write notes (n, 4) as a one-instrument MIDI file (times in seconds from the ticks)."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    instrument = pretty_midi.Instrument(program=program)
    instrument.notes = [pretty_midi.Note(velocity=int(v), pitch=int(p), start=s * TICK_S, end=e * TICK_S)
                        for s, e, p, v in np.asarray(notes, dtype=np.int64).reshape(-1, 4)]
    midi.instruments.append(instrument)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.write(str(path))
    return path


class EventTokenizer:
    """The symbolic generator's tokenizer (`lumina.models.protocol.ClipTokenizer`): an untimed one
    (`frame_rate` 0), whose clip is a track's event sequence read from its MIDI file (`read`), encoded as one
    token stream (`encode`: (T,) → (1, T))."""

    kind = "midi-events"
    decoder = "midi-events"
    sample_rate = 0
    frame_rate = 0.0
    num_codebooks = 1
    cardinality = VOCAB_SIZE

    def read(self, path: str | Path) -> np.ndarray:
        """Events (T,) of a MIDI file."""
        return encode_notes(read_midi(path))

    def encode(self, clip: np.ndarray) -> np.ndarray:
        events = np.asarray(clip, dtype=np.int64).ravel()
        if events.size and (events.min() < 0 or events.max() >= VOCAB_SIZE):
            raise ParameterError(f"event tokens must lie in 0..{VOCAB_SIZE - 1}")
        return events[None, :]

    def identity(self) -> str:
        return hashlib.sha256(f"{self.kind}-v1-{VOCAB_SIZE}".encode()).hexdigest()[:16]
