"""Gradient baselines on the MusicGen teacher-forcing loss (docs/baselines.md#method-definitions): TRAK, Grad-Cos,
GradDot, TracIn, LoGra,
FactGraSS and Fisher-regularised unlearning.

- `items`: training segments and queries as dattri data (tuples of tensors) for the teacher-forcing loss.
- `weights`: the LM as a `torch.func`-friendly module, dattri's `AttributionTask` on it, parameter choices.
- `gradients`: per-example gradients through dattri, random projections, resumable chunked caches.
- `gradient_similarity`: GradDot, Grad-Cos and TracIn (inner products of gradients, over checkpoints).
- `trak`: TRAK on projected gradients, ensembled over projections or checkpoints.
- `block_projected`: LoGra and FactGraSS through dattri's block-projected influence attributors.
- `gradient_pass`: one streaming pass of per-example gradients per checkpoint that feeds GradDot, Grad-Cos, TracIn,
  TRAK, LoGra and FactGraSS at once (`+method=gradients`).
- `unlearning`: Fisher-regularised gradient ascent on a query and the loss change of every training segment.
"""
