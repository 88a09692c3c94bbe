"""`toolkit report --data` on a raw table's model: the data read back through the plan.

The checkpoint of a model trained on text columns names encoded features (`firm[IBM]`);
the report reads the raw columns of `--data` and encodes them by the checkpoint's plan, so
its one-pass diagnostics equal statsmodels' `C(firm)` fit on the same rows (rtol 1e-8, the
contract's, in float64; measured ~1e-12).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from toolkit import train
from toolkit.report import make_report

RTOL = 1e-8


def test_robust_errors_of_a_categorical_model_equal_statsmodels(tmp_path):
    from statsmodels.datasets import grunfeld

    frame = grunfeld.load_pandas().data
    frame["year"] = frame["year"].astype(int)
    path = tmp_path / "grunfeld.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "model.pt"
    train(path, targets="invest", features=("value", "firm"),
          dtype="float64", out=out)  # fmt: skip
    content = make_report(out, path, chunk_rows=23, sample_rows=100).content
    diagnostics = content["diagnostics"]
    assert diagnostics["training_rows"] is True
    terms = diagnostics["terms"]
    # The same rows as training: the checkpoint's seeded split, on the encoded rows.
    from toolkit.io import holdout_mask
    from toolkit.training import checkpoint

    payload = checkpoint.load(out)
    names = payload["spec"]["feature_names"]
    design = pd.get_dummies(frame["firm"], dtype=float)[[n[5:-1] for n in names[1:]]]
    block = np.column_stack([frame["value"], design, frame["invest"]])
    kept = frame[~holdout_mask(block, payload["data"]["val_fraction"], 0)]
    assert len(kept) == diagnostics["rows"]
    for kind in ("HC0", "HC1", "HC3"):
        fitted = smf.ols("invest ~ value + C(firm)", data=kept).fit(cov_type=kind)
        expected = {_term(name): value for name, value in fitted.bse.items()}
        found = dict(zip(terms, diagnostics["targets"][0]["robust_stderr"][kind], strict=True))
        assert set(found) == set(expected)
        for term, value in expected.items():
            assert np.isclose(found[term], value, rtol=RTOL), (kind, term)


def _term(name: str) -> str:
    found = re.fullmatch(r"C\((\w+)\)\[T\.(.*)\]", name)
    if found:
        return f"{found.group(1)}[{found.group(2)}]"
    return "(intercept)" if name == "Intercept" else name
