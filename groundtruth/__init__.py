"""Ground truth for attribution: subset retraining and planted sources, and whether a score matrix (and Aria's
reading of it) agrees with them.

- `groundtruth.study`: subset studies (draw the subsets, train the models, each track's loss under each model).
- `groundtruth.lds`: the linear datamodeling score against a study, with a bootstrap interval.
- `groundtruth.planted`: planted-source retrieval, its chance levels, and the planted sources' measured influence.
- `groundtruth.judge`: every method run against the truth; LUMINA's channels on their own kind of source.
- `groundtruth.agreement`: Aria's diagnostics versus the truth.
- `groundtruth.tables`: the Markdown and CSV reports and the findings in plain sentences.

May import `lumina` (the generator, the manifest), `aria` (its readers and diagnostics) and `execution`;
`aria` never imports this package.
"""

from execution.kernels import pin_kernels

pin_kernels()  # numpy and torch load with AVX2 kernels on every x86-64 machine class (execution/kernels.py)
