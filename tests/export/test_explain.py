"""toolkit/export/explain.py: `toolkit export --explain`, against statsmodels and numpy.

The models are real `toolkit train` checkpoints (tests/explain_models.py: every row a
training row), whose "inference" statistics --explain reads. References: statsmodels' OLS
`get_prediction(X0).summary_frame(alpha)` for the interval (rtol 1e-8 in float64, the
issue's bar), numpy in float64 for the contributions and the float32 models.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import statsmodels.api as sm
from explain_models import exported, make_data, trained
from scipy import stats

from toolkit import card
from toolkit.errors import CheckpointError, ParityError, UsageError
from toolkit.export import explain, export_model
from toolkit.runtime import Predictor
from toolkit.training import checkpoint

# float64 models against statsmodels: the bar. Both sides solve the same least
# squares problem in float64 (toolkit refines to float64 resolution), so they agree to
# ~1e-13; 1e-8 leaves room for statsmodels' pinv-based solve on any design.
RTOL_STATSMODELS = 1e-8


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return make_data(rows=60, features=3)


@pytest.fixture(scope="module")
def float64_model(tmp_path_factory, data) -> Path:
    x, y = data
    return exported(trained(tmp_path_factory.mktemp("f64"), x, y))


def new_rows(x: np.ndarray, seed: int = 1) -> np.ndarray:
    """Rows inside and well outside the training range (high leverage)."""
    rng = np.random.default_rng(seed)
    rows = x.mean(axis=0) + x.std(axis=0) * rng.standard_normal((25, x.shape[1]))
    rows[-5:] *= 10
    return rows


def statsmodels_frame(x, y, rows, alpha=0.05, intercept=True):
    design = sm.add_constant(x) if intercept else x
    fit = sm.OLS(y, design).fit()
    exog = sm.add_constant(rows, has_constant="add") if intercept else rows
    return fit, fit.get_prediction(exog).summary_frame(alpha=alpha)


def test_the_interval_is_statsmodels_obs_ci_in_float64(float64_model, data):
    x, y = data
    rows = new_rows(x)
    found = Predictor(float64_model).explain(rows)
    fit, frame = statsmodels_frame(x, y[:, 0], rows)
    np.testing.assert_allclose(found.prediction[:, 0], frame["mean"], rtol=RTOL_STATSMODELS)
    np.testing.assert_allclose(found.lower[:, 0], frame["obs_ci_lower"], rtol=RTOL_STATSMODELS)
    np.testing.assert_allclose(found.upper[:, 0], frame["obs_ci_upper"], rtol=RTOL_STATSMODELS)
    # A new observation's standard error: the mean's and the residual variance, combined.
    obs_se = np.sqrt(frame["mean_se"] ** 2 + fit.scale)
    np.testing.assert_allclose(found.stderr[:, 0], obs_se, rtol=RTOL_STATSMODELS)
    assert found.level == 0.95


def test_without_an_intercept_the_interval_is_statsmodels_too(tmp_path):
    x, y = make_data(rows=40, features=2, seed=3)
    y = y - 3.0  # a model through the origin
    model = exported(trained(tmp_path, x, y, intercept=False))
    rows = new_rows(x)
    found = Predictor(model).explain(rows)
    _, frame = statsmodels_frame(x, y[:, 0], rows, intercept=False)
    np.testing.assert_allclose(found.lower[:, 0], frame["obs_ci_lower"], rtol=RTOL_STATSMODELS)
    np.testing.assert_allclose(found.upper[:, 0], frame["obs_ci_upper"], rtol=RTOL_STATSMODELS)


def test_each_target_gets_its_own_interval(tmp_path):
    x, y = make_data(rows=50, features=2, targets=2, seed=4)
    y[:, 1] *= 10  # a different residual variance
    found = Predictor(exported(trained(tmp_path, x, y))).explain(new_rows(x))
    for t in range(2):
        _, frame = statsmodels_frame(x, y[:, t], new_rows(x))
        np.testing.assert_allclose(found.lower[:, t], frame["obs_ci_lower"], rtol=RTOL_STATSMODELS)
        np.testing.assert_allclose(found.upper[:, t], frame["obs_ci_upper"], rtol=RTOL_STATSMODELS)


def test_the_default_level_is_the_training_runs_alpha(tmp_path, data):
    x, y = data
    model = exported(trained(tmp_path, x, y, alpha=0.1))  # `toolkit train --alpha 0.1`
    found = Predictor(model).explain(new_rows(x))
    _, frame = statsmodels_frame(x, y[:, 0], new_rows(x), alpha=0.1)
    np.testing.assert_allclose(found.upper[:, 0], frame["obs_ci_upper"], rtol=RTOL_STATSMODELS)
    assert found.level == 0.9


def test_the_level_is_fixed_at_export_and_recorded_in_the_card(tmp_path, data):
    x, y = data
    model = exported(trained(tmp_path, x, y), interval_level=0.9)
    found = Predictor(model).explain(new_rows(x))
    _, frame = statsmodels_frame(x, y[:, 0], new_rows(x), alpha=0.1)
    np.testing.assert_allclose(found.lower[:, 0], frame["obs_ci_lower"], rtol=RTOL_STATSMODELS)
    assert found.level == 0.9
    entry = card.decode(Predictor(model).metadata)[card.EXPLAIN]
    df = len(x) - 4  # 60 rows, 3 slopes and an intercept
    assert entry["interval"] == {
        "level": 0.9,
        "alpha": 0.05,  # the checkpoint's; the level was chosen at export
        "df": df,
        "t_quantile": stats.t.ppf(0.95, df),
    }
    assert entry["outputs"] == ["contributions", "stderr", "lower", "upper"]
    np.testing.assert_allclose(entry["feature_mean"], x.mean(axis=0), rtol=1e-15)


def test_contributions_are_w_times_x_minus_the_mean_and_add_up(float64_model, data):
    x, _ = data
    rows = new_rows(x)
    predictor = Predictor(float64_model)
    found = predictor.explain(rows)
    payload = checkpoint.load(float64_model.with_suffix(".pt"))
    weight = payload["state_dict"]["weight"].numpy()
    bias = payload["state_dict"]["bias"].numpy()
    expected = (rows - x.mean(axis=0))[:, None, :] * weight
    scale = (np.abs(rows) + np.abs(x.mean(axis=0)))[:, None, :] * np.abs(weight)
    # Two float64 roundings (a difference, a product) per value: 1e-15 of the terms.
    assert np.all(np.abs(found.contributions - expected) <= 1e-15 * scale)
    np.testing.assert_allclose(found.baseline, weight @ x.mean(axis=0) + bias, rtol=1e-14)
    # The identity: contributions + the prediction at the mean = the prediction, up to the
    # rounding of sums of d + 1 terms (1e-14 of their magnitudes).
    total = found.contributions.sum(axis=2) + found.baseline
    magnitude = np.abs(found.contributions).sum(axis=2) + np.abs(found.baseline)
    assert np.all(np.abs(total - found.prediction) <= 1e-14 * magnitude)


def test_float32_models_compute_in_float32_to_their_documented_precision(tmp_path):
    # Correlated features (r ~ 0.999): the quadratic form x' M x would cancel here; the
    # Cholesky factor's sum of squares does not.
    x, y = make_data(rows=400, features=4, correlated=0.05, seed=5)
    ckpt = trained(tmp_path, x, y, dtype="float32")
    found = Predictor(exported(ckpt)).explain(new_rows(x).astype(np.float32))
    assert found.stderr.dtype == found.contributions.dtype == np.float32
    plan = explain.plan(checkpoint.load(ckpt), None)
    reference = plan.reference(new_rows(x).astype(np.float32))
    # contributions: 2 float32 roundings of the terms (6e-8 each), plus the mean's rounding.
    want, scale = reference["contributions"]
    assert np.all(np.abs(found.contributions - want) <= 3e-7 * scale)
    # stderr relative to its value: 1e-5, the README's bound (measured here 7e-7; 4e-6 at
    # r = 0.99999, where x' M x in float32 is off by 8e-4); lower and upper: 1e-5 of the
    # interval's terms (measured 3e-7).
    want, _ = reference["stderr"]
    np.testing.assert_allclose(found.stderr, want, rtol=1e-5)
    for name in ("lower", "upper"):
        want, scale = reference[name]
        assert np.all(np.abs(getattr(found, name) - want) <= 1e-5 * scale)
    total = found.contributions.astype(np.float64).sum(axis=2) + found.baseline
    magnitude = np.abs(found.contributions).sum(axis=2) + np.abs(found.baseline)
    assert np.all(np.abs(total - found.prediction) <= 1e-6 * magnitude)


def test_a_ridge_model_gets_contributions_alone(tmp_path, data):
    x, y = data
    ckpt = trained(tmp_path, x, y, l2=1.0)
    predictor = Predictor(exported(ckpt))
    found = predictor.explain(x[:3])
    assert found.stderr is None and found.lower is None and found.level is None
    assert found.contributions.shape == (3, 1, 3)
    one = predictor.explain(x[1])  # the one-row path checks its two outputs' shapes
    assert one.contributions.shape == (1, 1, 3) and one.stderr is None
    np.testing.assert_array_equal(one.contributions, found.contributions[1:2])
    with pytest.raises(UsageError, match=r"--interval-level 0.9 cannot be used: .* ridge fit"):
        export_model(ckpt, tmp_path / "m.onnx", explain=True, interval_level=0.9)


def test_a_checkpoint_without_inference_is_refused_with_the_remedy(tmp_path, data):
    x, y = data
    ckpt = trained(tmp_path, x, y)
    payload = checkpoint.load(ckpt)
    inference, payload["inference"] = payload["inference"], None
    checkpoint.save(ckpt, payload)
    with pytest.raises(CheckpointError, match=r"has none .* retrain it with `toolkit train`"):
        export_model(ckpt, tmp_path / "m.onnx", explain=True)
    assert not (tmp_path / "m.onnx").exists()
    payload["inference"] = {**inference, "feature_mean": [1.0]}  # what the schema leaves
    checkpoint.save(ckpt, payload)
    with pytest.raises(CheckpointError, match=r"feature_mean should be 3 finite numbers"):
        export_model(ckpt, tmp_path / "m.onnx", explain=True)


def test_a_breach_on_an_explain_output_writes_nothing(tmp_path, data, monkeypatch):
    x, y = data
    ckpt = trained(tmp_path, x, y)
    genuine = explain.reference

    def off(plan, rows):  # a reference 1e-6 away: 1e6 times float64's allowance
        found = genuine(plan, rows)
        values, scale = found["stderr"]
        found["stderr"] = (values * (1 + 1e-6), scale)
        return found

    monkeypatch.setattr(explain, "reference", off)
    output = tmp_path / "m.onnx"
    with pytest.raises(ParityError) as caught:
        export_model(ckpt, output, explain=True)
    message = str(caught.value)
    assert message.startswith(
        "parity gate failed: ONNX Runtime disagrees with PyTorch or the float64 reference of "
        f"the explain outputs; nothing written to {output}."
    )
    assert "CPUExecutionProvider, output 'stderr': a difference of" in message
    assert "output 'lower'" not in message  # each output is judged on its own
    assert not output.exists()


def test_the_graph_and_the_card_of_an_explain_export(float64_model):
    model = onnx.load(float64_model)
    outputs = [
        (o.name, [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim])
        for o in model.graph.output
    ]
    assert outputs == [
        ("prediction", ["batch", 1]),
        ("contributions", ["batch", 1, 3]),
        ("stderr", ["batch", 1]),
        ("lower", ["batch", 1]),
        ("upper", ["batch", 1]),
    ]
    assert model.graph.node[0].op_type == "Gemm"  # the prediction is today's Gemm
    assert {n.op_type for n in model.graph.node} <= {
        "Gemm",
        "Sub",
        "Unsqueeze",
        "Mul",
        "ReduceL2",
    }
    written = [p.key for p in model.metadata_props]
    assert written == [*card.KEYS, card.EXPLAIN]
    parity = json.loads(dict((p.key, p.value) for p in model.metadata_props)[card.PARITY])
    cpu = parity["providers"]["CPUExecutionProvider"]
    assert sorted(cpu["outputs"]) == ["contributions", "lower", "stderr", "upper"]
    assert all(o["passed"] and o["rows_checked"] > 4096 for o in cpu["outputs"].values())
    assert parity["scales"] == {name: explain.SCALES[name] for name in cpu["outputs"]}


def test_a_default_export_has_one_output_and_no_explain_entry(tmp_path, data):
    x, y = data
    ckpt = trained(tmp_path, x, y)
    plain = onnx.load(export_model(ckpt, tmp_path / "plain.onnx").output)
    assert [o.name for o in plain.graph.output] == ["prediction"]
    assert [n.op_type for n in plain.graph.node] == ["Gemm"]
    assert card.EXPLAIN not in {p.key for p in plain.metadata_props}
    assert "outputs" not in plain.metadata_props[-1].value  # parity: the prediction's only


def test_the_cli_reports_the_outputs_and_refuses_a_level_without_explain(tmp_path, data, run):
    x, y = data
    ckpt = str(trained(tmp_path, x, y))
    result = run("export", str(tmp_path / "m.onnx"), "--checkpoint", ckpt, "--explain")
    assert result.exit_code == 0, result.output
    df = len(x) - 4
    assert (
        f"with explain outputs contributions, stderr, lower, upper (0.95 prediction interval, "
        f"t = {stats.t.ppf(0.975, df):.6g} on {df} df); parity passed" in result.output
    )
    result = run("export", str(tmp_path / "j.onnx"), "--checkpoint", ckpt, "--explain", "--json")
    assert json.loads(result.stdout)["explain"]["interval"]["df"] == df
    result = run(
        "export", str(tmp_path / "n.onnx"), "--checkpoint", ckpt, "--interval-level", "0.9"
    )
    assert result.exit_code == 2
    assert "--interval-level applies to --explain models; add --explain." in result.output
    result = run("export", "--checkpoint", ckpt, "--explain", "--interval-level", "1")
    assert result.exit_code == 2 and "--interval-level" in result.output


def test_an_exact_fit_has_a_zero_width_interval(tmp_path):
    """The seed data lie on a plane: sigma2 is 0, and so are stderr and the interval's
    width; the gate's reference must not divide 0 by 0 (warnings are errors here)."""
    from toolkit.training import TrainConfig, train

    train(TrainConfig(out=tmp_path / "seed.pt", dtype="float64"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = exported(tmp_path / "seed.pt")
    found = Predictor(model).explain([[1.0, 2.0], [30.0, -4.0]])
    assert np.all(found.stderr < 1e-12)
    np.testing.assert_allclose(found.lower, found.prediction, rtol=0, atol=1e-10)
    np.testing.assert_allclose(found.prediction[:, 0], [2.0, 25.0], rtol=1e-12)


@pytest.mark.gpu
def test_explain_outputs_pass_the_gate_on_cuda_and_match_the_cpu(tmp_path, data):
    x, y = data
    ckpt = trained(tmp_path, x, y, dtype="float32")
    result = export_model(ckpt, tmp_path / "m.onnx", explain=True)
    providers = result.parity.to_dict()["providers"]
    if "CUDAExecutionProvider" in providers:
        assert sorted(providers["CUDAExecutionProvider"]["outputs"]) == [
            "contributions", "lower", "stderr", "upper"
        ]  # fmt: skip
    assert result.parity.passed
    rows = new_rows(x).astype(np.float32)
    cpu = Predictor(result.output, providers="cpu").explain(rows)
    auto = Predictor(result.output).explain(rows)  # CUDA where onnxruntime-gpu runs it
    # float32 on two devices: their sums run in other orders; 1e-5 of the interval's value.
    np.testing.assert_allclose(auto.upper, cpu.upper, rtol=1e-5)
    np.testing.assert_allclose(auto.stderr, cpu.stderr, rtol=1e-5)
