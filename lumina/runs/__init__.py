"""Run infrastructure every other part of `lumina` stands on: errors (`errors`), the output layout (`layout`),
provenance stamped at write time (`provenance`), atomic writes and tables (`files`), the score-matrix artefact
(`score_matrix`), cache locks (`locking`), device placement (`device`) and the one-line errors of every app
(`cli`). It imports no other `lumina` package."""
