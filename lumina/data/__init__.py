"""The data: corpus builders (`corpus.build_corpus`: the music21 rendering, a folder of audio, MIDI windows), the
manifest (`manifest`), audio and MIDI I/O (`audio`, `midi`) and the reader of generated-query folders
(`generated`). It imports nothing of the generators (`lumina.models`) or the methods."""
