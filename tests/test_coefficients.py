"""toolkit/coefficients.py: the coefficient table's text, and the model card's compact form."""

from __future__ import annotations

import json
import math

from toolkit.coefficients import MAX_TARGETS, compact, strict, table_lines


def coefficient(term: str, estimate: float, stderr: float | None, **more: float | None) -> dict:
    row = {"term": term, "estimate": estimate, "stderr": stderr, "t": None, "p": None}
    return {**row, "lower": None, "upper": None, "vif": None, **more}


def inference(rows: list[dict], **more) -> dict:
    target = {
        "name": "y",
        "ssr": 12.0,
        "sigma2": 1.5,
        "rse": math.sqrt(1.5),
        "r2": 0.91234,
        "r2_adj": 0.8999,
        "f": 59.9,
        "f_pvalue": 3.0216e-9,
        "loglik": -52.29,
        "aic": 112.58,
        "bic": 116.76,
        "coefficients": rows,
    }
    top = {"alpha": 0.05, "n": 21, "df_model": 2, "df_resid": 18, "condition_number": 1811.5}
    return {**top, "notes": [], "targets": [target], **more}


FULL = inference(
    [
        coefficient("(intercept)", -39.92, 11.9, t=-3.356, p=0.00375, lower=-65.02, upper=-14.82),
        coefficient(
            "AIRFLOW", 0.7156, 0.1349, t=5.307, p=5.8e-05, lower=0.4311, upper=1.0, vif=2.9
        ),
    ]
)


def test_the_table_reads_like_statsmodels_summary():
    # Hand-formatted: four significant digits (three for p), trailing zeros kept.
    assert table_lines(FULL) == [
        "  y: least squares on 21 rows; 95% intervals",
        "  term               coef    std err          t      P>|t|     [0.025     0.975]",
        "  (intercept)      -39.92      11.90     -3.356    0.00375     -65.02     -14.82",
        "  AIRFLOW          0.7156     0.1349      5.307   5.80e-05     0.4311      1.000",
        "  R^2 0.9123, adj. R^2 0.8999, F 59.90 (p 3.02e-09), RSE 1.225 on 18 df",
        "  log-likelihood -52.29, AIC 112.6, BIC 116.8, cond. no. 1812, "
        "largest VIF 2.900 (AIRFLOW)",
    ]


def test_wide_models_are_cut_with_a_pointer_to_json():
    rows = [coefficient(f"feature_with_a_very_long_name_{i}", 1.0, 0.5) for i in range(30)]
    lines = table_lines(inference(rows), max_rows=5)
    assert lines[2].split()[0] == "feature_with_a_very_l..."  # cut to 24 characters
    assert lines[7] == "  ... 25 more coefficients; see --json"
    several = inference(rows[:1])
    several["targets"] = several["targets"] * (MAX_TARGETS + 2)
    assert table_lines(several)[-1] == "  ... 2 more targets; see --json"


def test_missing_numbers_show_as_n_a_and_notes_are_numbered_and_wrapped():
    ridge = inference([coefficient("x", 2.0, None)], notes=["a " * 60, "short"])
    ridge["targets"][0].update(f=None, f_pvalue=None)
    lines = table_lines(ridge)
    assert lines[2].split() == ["x", "2.000", "n/a", "n/a", "n/a", "n/a", "n/a"]
    assert "F n/a," in lines[3]
    assert lines[5].startswith("  [1] a a") and lines[6].startswith("      a a")
    assert lines[-1] == "  [2] short" and max(len(line) for line in lines[5:]) <= 92


def test_the_compact_form_keeps_the_cards_keys_as_strict_json():
    whole = inference([coefficient("x", 2.0, 0.0, t=math.inf, p=0.0, lower=2.0, upper=2.0)])
    whole["targets"][0]["loglik"] = math.inf
    small = compact(whole)
    json.dumps(small, allow_nan=False)
    assert set(small) == {
        "alpha", "n", "df_model", "df_resid", "l2", "solver", "condition_number", "notes",
        "targets",
    }  # fmt: skip
    (target,) = small["targets"]
    assert "loglik" not in target and target["df_resid"] == 18
    assert target["coefficients"] == [{"term": "x", "estimate": 2.0, "stderr": 0.0, "p": 0.0}]
    # From the compact form the table has no intervals, and t is estimate / std err.
    lines = table_lines(small)
    assert lines[1].split() == ["term", "coef", "std", "err", "t", "P>|t|"]
    assert lines[2].split() == ["x", "2.000", "0", "inf", "0"]


def test_strict_turns_every_non_finite_float_into_none():
    assert strict({"a": [math.nan, 1.0, (-math.inf,)], "b": {"c": math.inf}}) == {
        "a": [None, 1.0, [None]],
        "b": {"c": None},
    }


def test_a_foreign_card_value_gives_a_table_not_a_traceback():
    assert table_lines({"targets": 3}) == []
    odd = {"alpha": "x", "targets": [7, {"name": "y", "coefficients": [None, {"term": 1}]}]}
    lines = table_lines(odd)
    assert lines[0] == "  y: least squares on ? rows"
    assert lines[2].split() == ["1", "n/a", "n/a", "n/a", "n/a"]
