import importlib.util

import pandas as pd

from groundtruth.abstention import lumina_empty_description_z, lumina_gate_shares, query_table
from lumina.methods.lumina import reference_tops
from tests.test_abstention import PIPELINE_QUERIES, tiny_attribution  # noqa: F401


def test_same(tiny_attribution):
    spec = importlib.util.spec_from_file_location("old_abstention", "/tmp/old_abstention.py")
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    manifest, generator, db = tiny_attribution
    queries = query_table(manifest, list(PIPELINE_QUERIES), seed=0)
    t_old, t_new = old.lumina_reference_tops(db), reference_tops(db)
    assert t_old.keys() == t_new.keys() and all((t_old[k] == t_new[k]).all() for k in t_old)
    for gates in (["sts1", "conf95", "calibrated"],):
        a, b = old.lumina_gate_shares(db, queries, gates), lumina_gate_shares(db, queries, gates)
        pd.testing.assert_frame_equal(a, b)
    a = old.lumina_empty_description_z(db, generator, manifest, queries, t_old)
    b = lumina_empty_description_z(db, generator, manifest, queries, t_new)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    print(a, b, sep="\n")
