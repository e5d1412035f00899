"""The generator under attribution: codec + MusicGen, teacher forcing, gradient capture, training."""
