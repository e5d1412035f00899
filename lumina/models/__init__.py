"""The generators under attribution and their codecs: the generator protocol (`protocol`), the one builder that
turns a `model` config into a loader (`builder`), MusicGen (`musicgen`, `architectures`, `embedded_recipe`), the
symbolic MusicTransformer (`music_transformer`, `music_transformer_recipe`), codecs (`codecs/`), teacher forcing,
gradient capture, training, and the generated-queries stage (`generate`)."""
