"""The symbolic domain (docs/symbolic.md): MIDI events in the vocabulary of dattri's MusicTransformer benchmark
(`events`), the window corpus with planted queries (`corpus`) and the MusicTransformer generator (`model`)."""
