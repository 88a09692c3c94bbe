"""Training on raw tables (toolkit/training/tables.py): categorical columns end to end.

References are independent: statsmodels' formula API (`C(col)`: treatment coding, the
first level in sorted order the reference, as toolkit's plan) on the same rows, and
toolkit itself on the same table pre-encoded by hand or split differently.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from conftest import train_json

from toolkit.columns import TablePlan
from toolkit.training import checkpoint

# The bound for float64 coefficients against statsmodels (measured: 1e-12 or
# better; both solve the same well-conditioned least squares in float64).
STATSMODELS_RTOL = 1e-8
# Standard errors and p-values: the same bound (p-values far in the tail are compared
# absolutely below this: they have no relative digits to agree on).
P_ATOL = 1e-300
# Shards, chunks and processes change only the summation order of the moments.
SPLIT_RTOL = 1e-10


@pytest.fixture(scope="module")
def grunfeld() -> pd.DataFrame:
    """statsmodels' Grunfeld panel: 11 firms (text) x 20 years (integers)."""
    from statsmodels.datasets import grunfeld as data

    frame = data.load_pandas().data
    frame["year"] = frame["year"].astype(int)
    frame["firm"] = frame["firm"].astype(str)
    return frame


@pytest.fixture(scope="module")
def grunfeld_csv(grunfeld: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("grunfeld") / "grunfeld.csv"
    grunfeld.to_csv(path, index=False)
    return path


def statsmodels_term(name: str) -> str:
    """statsmodels' `C(firm)[T.IBM]` as toolkit names it, `firm[IBM]`; others unchanged."""
    found = re.fullmatch(r"C\((\w+)\)\[T\.(.*)\]", name)
    if found:
        return f"{found.group(1)}[{found.group(2)}]"
    return "(intercept)" if name == "Intercept" else name


def by_term(report: dict[str, Any]) -> dict[str, float]:
    weights = dict(zip(report["features"], report["weights"][0], strict=True))
    return {**weights, "(intercept)": report["bias"][0]}


def ols(frame: pd.DataFrame, formula: str) -> Any:
    return smf.ols(formula, data=frame).fit()


def assert_matches_statsmodels(report: dict[str, Any], fitted: Any) -> None:
    ours = by_term(report)
    theirs = {statsmodels_term(name): value for name, value in fitted.params.items()}
    assert set(ours) == set(theirs)
    for term, value in theirs.items():
        assert ours[term] == pytest.approx(value, rel=STATSMODELS_RTOL), term
    rows = {row["term"]: row for row in report["inference"]["targets"][0]["coefficients"]}
    for name in fitted.params.index:
        term = statsmodels_term(name)
        assert rows[term]["stderr"] == pytest.approx(fitted.bse[name], rel=STATSMODELS_RTOL)
        assert rows[term]["p"] == pytest.approx(
            fitted.pvalues[name], rel=STATSMODELS_RTOL, abs=P_ATOL
        )


def test_grunfeld_firm_matches_statsmodels_formula(run, grunfeld, grunfeld_csv):
    report = train_json(
        run, "--data", str(grunfeld_csv), "--target", "invest",
        "--features", "value,capital,firm", "--dtype", "float64", "--val-fraction", "0",
    )  # fmt: skip
    assert_matches_statsmodels(report, ols(grunfeld, "invest ~ value + capital + C(firm)"))
    # Treatment coding: the first firm in sorted order is the reference, without a column.
    assert report["features"][:3] == ["value", "capital", "firm[Atlantic Refining]"]
    assert "firm[American Steel]" not in report["features"]
    plan = TablePlan.from_dict(report["table"])
    assert plan.raw_names == ["value", "capital", "firm"]
    assert plan.columns[2].levels[0] == "American Steel"


def test_grunfeld_year_as_categorical_matches_statsmodels(run, grunfeld, grunfeld_csv):
    report = train_json(
        run, "--data", str(grunfeld_csv), "--target", "invest",
        "--features", "value,capital,year", "--categorical", "year",
        "--dtype", "float64", "--val-fraction", "0",
    )  # fmt: skip
    assert_matches_statsmodels(report, ols(grunfeld, "invest ~ value + capital + C(year)"))
    assert "year[1936]" in report["features"]  # integers in decimal; 1935 is the reference


def test_two_categoricals_and_the_checkpoint(run, grunfeld, grunfeld_csv, tmp_path):
    out = tmp_path / "model.pt"
    report = train_json(
        run, "--data", str(grunfeld_csv), "--target", "invest", "--categorical", "year",
        "--dtype", "float64", "--val-fraction", "0", "--out", str(out),
    )  # fmt: skip
    fitted = ols(grunfeld, "invest ~ value + capital + C(firm) + C(year)")
    assert_matches_statsmodels(report, fitted)
    payload = checkpoint.load(out)  # weights_only: the plan is plain data
    plan = TablePlan.from_dict(payload["table"])
    assert plan.encoded_names == payload["spec"]["feature_names"]
    assert plan.unknown_level is None  # export decides it
    text = run("info", str(out))
    assert text.exit_code == 0, text.output
    assert "firm: categorical string, 11 levels, reference 'American Steel'" in text.output
    # A --categorical column of a CSV file is read as text (tables-io): its levels are the
    # cells' texts; these years sort the same either way.
    assert re.search(r"year: categorical \w+, 20 levels, reference '1935'", text.output)
    described = json.loads(run("info", str(out), "--json").stdout)
    assert TablePlan.from_dict(described["table"]) == plan


def test_numeric_table_has_no_plan(run, grunfeld_csv, tmp_path):
    out = tmp_path / "numeric.pt"
    report = train_json(
        run, "--data", str(grunfeld_csv), "--target", "invest",
        "--features", "value,capital,year", "--out", str(out),
    )  # fmt: skip
    assert "table" not in report
    assert "table" not in checkpoint.load(out)


def test_pre_encoded_table_gives_the_same_model(run, grunfeld, grunfeld_csv, tmp_path):
    raw = train_json(
        run, "--data", str(grunfeld_csv), "--target", "invest",
        "--dtype", "float64", "--val-fraction", "0",
    )  # fmt: skip
    dummies = pd.get_dummies(grunfeld["firm"], prefix="firm", prefix_sep="[", dtype=float)
    dummies.columns = [f"{name}]" for name in dummies.columns]
    encoded = pd.concat([grunfeld[["value", "capital", "year"]], dummies], axis=1)
    encoded = encoded.drop(columns=["firm[American Steel]"])
    encoded["invest"] = grunfeld["invest"]
    path = tmp_path / "encoded.csv"
    encoded.to_csv(path, index=False)
    hand = train_json(
        run, "--data", str(path), "--target", "invest", "--dtype", "float64",
        "--val-fraction", "0",
    )  # fmt: skip
    ours, theirs = by_term(raw), by_term(hand)
    assert set(ours) == set(theirs)
    for term, value in theirs.items():
        assert ours[term] == pytest.approx(value, rel=SPLIT_RTOL), term


def write_shards(frame: pd.DataFrame, folder: Path, cuts: list[int]) -> Path:
    folder.mkdir()
    bounds = [0, *cuts, len(frame)]
    for k, (low, high) in enumerate(itertools.pairwise(bounds)):
        frame.iloc[low:high].to_csv(folder / f"part-{k}.csv", index=False)
    return folder


def test_shards_and_small_chunks_give_the_same_plan_and_model(run, grunfeld, tmp_path):
    # Rows sorted by firm: the first shard lacks most firms, the last lacks the first ones.
    frame = grunfeld.sort_values(["firm", "year"]).reset_index(drop=True)
    whole = tmp_path / "whole.csv"
    frame.to_csv(whole, index=False)
    shards = write_shards(frame, tmp_path / "shards", [37, 151])
    args = ["--target", "invest", "--dtype", "float64", "--val-fraction", "0"]
    one = train_json(run, "--data", str(whole), *args)
    split = train_json(run, "--data", str(shards), "--chunk-rows", "7", *args)
    assert split["table"] == one["table"]
    assert split["features"] == one["features"]
    np.testing.assert_allclose(split["weights"], one["weights"], rtol=SPLIT_RTOL)
    np.testing.assert_allclose(split["bias"], one["bias"], rtol=SPLIT_RTOL)


def test_lbfgs_reaches_the_exact_optimum_on_a_categorical_table(run, grunfeld_csv):
    args = ["--data", str(grunfeld_csv), "--target", "invest", "--categorical", "year"]
    args += ["--dtype", "float64", "--val-fraction", "0"]
    exact = train_json(run, *args)
    lbfgs = train_json(run, *args, "--solver", "lbfgs", "--epochs", "200", "--patience", "0")
    # The README's promise for the iterative solvers: training R^2 within 1e-5 of exact.
    assert abs(lbfgs["optimality_gap"]["r2_gap"]) <= 1e-5
    assert lbfgs["metrics"]["train"]["r2"] == pytest.approx(
        exact["metrics"]["train"]["r2"], abs=1e-5
    )
    assert lbfgs["features"] == exact["features"]


def test_collinear_dummies_name_the_levels_and_the_intercept(run, write_csv):
    # 'b' is 'q' when 'a' is 'x' and 'p' otherwise: a[y] + b[q] = 1, through the intercept.
    rows = [("x", "q", 1.0), ("y", "p", 2.0), ("x", "q", 3.5), ("y", "p", 0.5), ("x", "q", 2.0)]
    rows += [("y", "p", 4.0)]
    text = "a,b,z,t\n" + "".join(f"{a},{b},{z},{i * 1.5 + z}\n" for i, (a, b, z) in enumerate(rows))
    path = write_csv("collinear.csv", text)
    result = run("train", "--data", str(path), "--target", "t", "--val-fraction", "0", "-q")
    assert result.exit_code == 1, result.output
    message = " ".join(result.output.split())
    assert "features 'a[y]', 'b[q]' and the intercept are collinear" in message
    assert "--no-intercept" in message


def test_two_torchrun_processes_give_the_same_plan_and_model(run, grunfeld, tmp_path):
    frame = grunfeld.sort_values(["firm", "year"]).reset_index(drop=True)
    shards = write_shards(frame, tmp_path / "shards", [101, 150])  # rank 1 sees 5 firms
    args = ["--data", str(shards), "--target", "invest", "--categorical", "year"]
    args += ["--dtype", "float64", "--val-fraction", "0", "--json", "-q"]
    one = train_json(run, *args[:-2], "--out", str(tmp_path / "one.pt"))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", "-m", "toolkit", "train"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # what torchrun would set; silences its warning
    launched = subprocess.run(
        [*command, *args, "--out", str(tmp_path / "two.pt")],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert launched.returncode == 0, launched.stderr[-3000:]
    two = json.loads(launched.stdout)
    assert two["data"]["processes"] == 2
    assert two["table"] == one["table"]
    np.testing.assert_allclose(two["weights"], one["weights"], rtol=SPLIT_RTOL)
    np.testing.assert_allclose(two["bias"], one["bias"], rtol=SPLIT_RTOL)
    assert (
        checkpoint.load(tmp_path / "two.pt")["table"]
        == checkpoint.load(tmp_path / "one.pt")["table"]
    )


def test_resume_reuses_the_stored_plan_and_refuses_other_table_options(
    grunfeld_csv, tmp_path, monkeypatch
):
    import toolkit
    from toolkit.errors import CheckpointError, TrainingInterrupted

    settings = dict(targets="invest", categorical="year", solver="lbfgs", dtype="float64")
    whole = toolkit.train(grunfeld_csv, **settings, out=tmp_path / "whole.pt")

    def stop_at_3(epoch: int, losses: dict[str, float]) -> None:
        if epoch == 3:
            raise KeyboardInterrupt

    out = tmp_path / "model.pt"
    with pytest.raises(TrainingInterrupted, match="--resume"):
        toolkit.train(grunfeld_csv, **settings, out=out, on_epoch_end=stop_at_3)
    with pytest.raises(CheckpointError, match=r"--missing error \(saved\) vs drop"):
        toolkit.train(grunfeld_csv, **settings, out=out, resume=True, missing="drop")
    with pytest.raises(CheckpointError, match=r"--categorical year \(saved\) vs \(none\)"):
        toolkit.train(grunfeld_csv, **{**settings, "categorical": ()}, out=out, resume=True)

    def no_scan(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("--resume scanned the data again")

    monkeypatch.setattr("toolkit.io.scanner.scan", no_scan)
    resumed = toolkit.train(grunfeld_csv, **settings, out=out, resume=True)
    # The continued run is the uninterrupted one, bit for bit (the README's promise).
    np.testing.assert_array_equal(resumed.weight, whole.weight)
    assert resumed.table == whole.table


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--categorical", "nope"], "--categorical names 'nope', which is not a feature"),
        (["--categorical", "invest"], "--categorical names 'invest', which is a target"),
        (["--max-levels", "1"], "Invalid value for '--max-levels': 1 is not in the range x>=2"),
        (["--missing", "zero"], "Invalid value for '--missing': 'zero' is not one of"),
    ],
)
def test_table_options_misused_are_usage_errors(run, grunfeld_csv, options, message):
    result = run("train", "--data", str(grunfeld_csv), "--target", "invest", *options)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_folded_levels_share_the_other_column(run, grunfeld_csv):
    report = train_json(
        run, "--data", str(grunfeld_csv), "--target", "invest", "--features", "value,firm",
        "--max-levels", "4", "--val-fraction", "0",
    )  # fmt: skip
    # 20 rows per firm: ties keep the first levels in natural order (the reference first).
    assert report["features"] == [
        "value", "firm[Atlantic Refining]", "firm[Chrysler]", "firm[(other)]"
    ]  # fmt: skip
    plan = TablePlan.from_dict(report["table"])
    assert len(plan.columns[1].other) == 8


def test_integer_levels_of_a_csv_sort_by_value_as_statsmodels(run, tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"size": rng.integers(2, 13, 300), "x": rng.normal(size=300)})
    frame["y"] = 0.3 * frame["size"] + frame["x"] + rng.normal(size=300)
    frame.to_csv(tmp_path / "sizes.csv", index=False)
    report = train_json(
        run, "--data", str(tmp_path / "sizes.csv"), "--categorical", "size",
        "--dtype", "float64", "--val-fraction", "0",
    )  # fmt: skip
    assert report["features"][:2] == ["size[3]", "size[4]"]  # 2 is the reference
    assert_matches_statsmodels(report, ols(frame, "y ~ C(size) + x"))


def test_weighted_categorical_fit_matches_statsmodels_wls(run, grunfeld, tmp_path):
    frame = grunfeld.assign(w=1.0 + (grunfeld["year"] - 1935) / 10.0)
    frame.to_csv(tmp_path / "weighted.csv", index=False)
    report = train_json(
        run, "--data", str(tmp_path / "weighted.csv"), "--target", "invest",
        "--features", "value,capital,firm", "--weight", "w",
        "--dtype", "float64", "--val-fraction", "0",
    )  # fmt: skip
    fitted = smf.wls("invest ~ value + capital + C(firm)", data=frame, weights=frame["w"]).fit()
    assert_matches_statsmodels(report, fitted)


def test_a_numeric_column_with_a_typo_is_refused_at_the_typo(run, write_csv):
    # Mostly numbers and one text: a typo, not categories (guessing categories would fit
    # 5 dummies on the numbers' values): refused naming the cell, with the way to say it is
    # categorical after all.
    rows = [f"{i},{i * i % 13 if i != 4 else 'abc'},{2 * i + 1}" for i in range(1, 40)]
    path = write_csv("typo.csv", "x1,x2,y\n" + "\n".join(rows) + "\n")
    result = run("train", "--data", str(path), "-q")
    assert result.exit_code == 1, result.output
    message = " ".join(result.output.split())
    assert f"Error: {path}, row 5, column 'x2': expected a number, got 'abc'." in message
    assert "If 'x2' holds categories, name it with --categorical x2" in message
    report = train_json(run, "--data", str(path), "--categorical", "x2", "--val-fraction", "0")
    assert "x2[abc]" in report["features"]


def test_a_level_held_out_by_the_split_is_explained(run, write_csv):
    rows = [f"{i},{'a' if i % 2 else 'b'},{2 * i + i % 2}" for i in range(1, 60)]
    path = write_csv("rare.csv", "x,g,y\n" + "\n".join([*rows, "3,rare,5"]) + "\n")
    result = run("train", "--data", str(path), "-q")  # seed 0 holds the 'rare' row out
    assert result.exit_code == 1, result.output
    message = " ".join(result.output.split())
    assert "feature 'g[rare]' is constant" in message
    assert "Note: 'g[rare]' is the 0/1 column of one level" in message
    assert "--val-fraction 0" in message
    assert train_json(run, "--data", str(path), "--val-fraction", "0")["features"][-1] == "g[rare]"


@pytest.mark.gpu
@pytest.mark.parametrize("solver", ["exact", "lbfgs"])
def test_a_categorical_table_on_cuda_matches_cpu(run, grunfeld_csv, solver):
    args = ["--data", str(grunfeld_csv), "--target", "invest", "--categorical", "year"]
    args += ["--dtype", "float64", "--val-fraction", "0", "--solver", solver]
    cpu = train_json(run, *args, "--device", "cpu", "--out", "cpu.pt")
    gpu = train_json(run, *args, "--device", "cuda", "--out", "gpu.pt")
    assert gpu["device"].startswith("cuda") and gpu["table"] == cpu["table"]
    # exact: both refined to the float64 optimum, held to the statsmodels bound (another
    # summation order only); lbfgs: both at the optimum to the README's 1e-5 in R^2.
    if solver == "exact":
        np.testing.assert_allclose(gpu["weights"], cpu["weights"], rtol=STATSMODELS_RTOL)
    else:
        assert gpu["metrics"]["train"]["r2"] == pytest.approx(
            cpu["metrics"]["train"]["r2"], abs=1e-5
        )


def test_a_categorical_column_with_one_level_is_refused(run, write_csv):
    rows = "".join(f"{i},same,{2 * i}\n" for i in range(10))
    path = write_csv("one.csv", "x,g,y\n" + rows)
    result = run("train", "--data", str(path), "-q")
    assert result.exit_code == 1, result.output
    assert "column 'g' holds one level ('same') in every row" in " ".join(result.output.split())


def test_no_intercept_warns_that_the_reference_levels_have_no_column(run, grunfeld_csv):
    report = train_json(
        run, "--data", str(grunfeld_csv), "--target", "invest", "--features", "value,firm",
        "--no-intercept",
    )  # fmt: skip
    warnings = [note for note in report["notes"] if "without an intercept" in note]
    assert warnings and "'firm' ('American Steel')" in warnings[0]
