"""`--format html`: one self-contained page, nothing fetched from anywhere when opened.

Styles are inline, images are PNG data URIs, there is no script, no font and no link to
another file; a Content-Security-Policy meta tag (`default-src 'none'`) makes the
browser itself refuse any other request. Every text from the checkpoint, the data or the
model card is escaped.
"""

from __future__ import annotations

import html
import json
from typing import Any

from toolkit import card
from toolkit.report import plots
from toolkit.report.build import Report, coefficient_rows, parity_line
from toolkit.report.text import COLUMNS, cell

POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #1b1b1b; margin: 0; background: #fafafa; }
main { max-width: 1080px; margin: 0 auto; padding: 1.5rem 2rem 4rem; background: #fff; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
table { border-collapse: collapse; margin: .6rem 0; font-size: 13.5px; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
table.card td { text-align: left; } table.card th { text-align: left; color: #555; }
td.num, td { font-variant-numeric: tabular-nums; }
code, .eq { font-family: ui-monospace, monospace; font-size: 13px; }
figure { margin: 1rem 0; } figcaption { color: #555; font-size: 13px; max-width: 760px; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.muted { color: #666; } .warn { color: #a33; }
.figures { display: flex; flex-wrap: wrap; gap: 0 1.5rem; }
.figures figure { flex: 1 1 420px; }
nav a { margin-right: 1rem; } dl dt { font-weight: 600; } dl dd { margin: 0 0 .5rem 1rem; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def to_html(report: Report) -> str:
    """The report as one HTML document."""
    content = report.content
    targets = content["model"]["targets"]
    nav = [("model", "Model"), *((f"target-{j}", f"Target {t}") for j, t in enumerate(targets))]
    body = [_model_section(content)]
    body += [_target_section(report, j) for j in range(len(targets))]
    if content["history"] and content["history"].get("train"):
        nav.append(("loss", "Loss curves"))
        body.append(_loss_section(content))
    if content["onnx"] is not None:
        nav.append(("onnx", "ONNX model"))
        body.append(_onnx_section(content["onnx"]))
    nav.append(("glossary", "What the numbers mean"))
    body.append(_notes(content["notes"]) + GLOSSARY)
    links = " ".join(f'<a href="#{key}">{_e(label)}</a>' for key, label in nav)
    title = f"toolkit report: {content['checkpoint']}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
        f'<h1>{_e(title)}</h1>\n<p class="muted">written {_e(content["report"]["created"])} '
        f"by toolkit {_e(content['report']['toolkit'])}</p>\n<nav>{links}</nav>\n"
        + "\n".join(body)
        + "\n</main>\n</body>\n</html>\n"
    )


def _table(rows: list[tuple[str, Any]], css: str = "card") -> str:
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="{css}">{cells}</table>'


def _plain(value: Any) -> str:
    """A value as text: a dictionary as "key value; ...", numbers to 6 digits."""
    if isinstance(value, dict):
        return "; ".join(f"{_e(k)} {_plain(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return _e(json.dumps(value))
    return _e(cell(value) if isinstance(value, float) else value)


def _model_section(content: dict[str, Any]) -> str:
    model = content["model"]
    data = model["data"]
    equations = "<br>".join(f'<span class="eq">{_e(line)}</span>' for line in model["equations"])
    rows = [
        ("equation", equations),
        ("features", _e(", ".join(model["features"]))),
        ("targets", _e(", ".join(model["targets"]))),
        ("dtype, intercept", f"{_e(model['dtype'])}, {'yes' if model['intercept'] else 'no'}"),
        ("solver", f"{_e(model['solver'])} {_plain(model['hyperparameters'])}"),
        ("details", _plain(model["details"])),
        ("seed, device", f"{_e(model['seed'])}, {_e(model['device'])}"),
        ("training data", f"{_e(data.get('source'))} <code>{_e(data.get('sha256'))}</code>"),
        (
            "rows",
            f"{data.get('train_rows', 0):,} training, {data.get('val_rows', 0):,} validation "
            f"(fraction {_e(data.get('val_fraction'))})",
        ),
        ("created", f"{_e(model['created'])}, versions {_plain(model['versions'])}"),
    ]
    if model["optimality_gap"]:
        rows.append(("optimality gap", _plain(model["optimality_gap"])))
    metrics = [("", "".join(f"<th>{h}</th>" for h in ("MSE", "RMSE", "MAE", "R²", "rows")))]
    for split in ("train", "val"):
        found = model["metrics"].get(split)
        if found:
            keys = ("mse", "rmse", "mae", "r2", "rows")
            metrics.append((split, "".join(f"<td>{_e(cell(found.get(k)))}</td>" for k in keys)))
    metric_table = "<table>" + "".join(f"<tr><th>{k}</th>{v}</tr>" for k, v in metrics)
    return (
        f'<section id="model"><h2>Model card</h2>{_table(rows)}'
        f"<h3>Metrics of the saved model</h3>{metric_table}</table></section>"
    )


def _figure(title: str, uri: str, caption: str) -> str:
    return (
        f'<figure><img src="{uri}" alt="{_e(title)}"><figcaption><b>{_e(title)}.</b> '
        f"{_e(caption)}</figcaption></figure>"
    )


def _target_section(report: Report, j: int) -> str:
    content = report.content
    name = content["model"]["targets"][j]
    rows = coefficient_rows(content, j)
    parts = [f'<section id="target-{j}"><h2>Target {_e(name)}</h2>', _fit_table(content, j)]
    parts.append("<h3>Coefficients</h3>" + _coefficient_table(rows))
    inference = content["inference"]
    level = 1 - inference["alpha"] if inference else None
    if len(rows) > (1 if content["model"]["intercept"] else 0):
        parts.append(
            _figure(
                "Coefficients",
                plots.coefficients(rows, level, name),
                "Each slope with its confidence interval (t distribution, df_resid degrees of "
                "freedom); an interval that crosses the dashed zero line is not significant "
                "at that level.",
            )
        )
    if content["diagnostics"] is not None and report.scanned is not None:
        parts.append(_diagnostics(report, j))
    else:
        parts.append(
            '<p class="muted">Robust standard errors, Durbin-Watson, Jarque-Bera and the '
            "residual plots need the rows: <code>toolkit report --data PATH</code> with the "
            "training data.</p>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def _fit_table(content: dict[str, Any], j: int) -> str:
    inference = content["inference"]
    if inference is None:
        return '<p class="muted">No inference table in this checkpoint.</p>'
    fit = inference["targets"][j]
    rows = [
        (
            "observations, df model, df residual",
            f"{inference['n']:,}, {inference['df_model']}, {inference['df_resid']}",
        ),
        ("R², adjusted R²", f"{cell(fit['r2'])}, {cell(fit['r2_adj'])}"),
        ("F statistic (p-value)", f"{cell(fit['f'])} ({cell(fit['f_pvalue'], '.3g')})"),
        ("residual std error, SSR", f"{cell(fit['rse'])}, {cell(fit['ssr'])}"),
        (
            "log-likelihood, AIC, BIC",
            f"{cell(fit['loglik'])}, {cell(fit['aic'])}, {cell(fit['bic'])}",
        ),
        ("condition number", cell(inference["condition_number"], ".4g")),
        ("solver, l2", f"{_e(inference['solver'])}, {cell(inference['l2'])}"),
    ]
    notes = "".join(f"<li>{_e(note)}</li>" for note in inference.get("notes") or [])
    return _table([(k, _e(v)) for k, v in rows]) + (f"<ul>{notes}</ul>" if notes else "")


def _coefficient_table(rows: list[dict[str, Any]]) -> str:
    shown = [c for c in COLUMNS if any(row.get(c[0]) is not None for row in rows)]
    head = "<tr><th>term</th>" + "".join(f"<th>{_e(h)}</th>" for _, h, _ in shown) + "</tr>"
    body = "".join(
        f"<tr><td><code>{_e(row['term'])}</code></td>"
        + "".join(f"<td>{_e(cell(row.get(k), f))}</td>" for k, _, f in shown)
        + "</tr>"
        for row in rows
    )
    return f"<table>{head}{body}</table>"


def _diagnostics(report: Report, j: int) -> str:
    diagnostics = report.content["diagnostics"]
    target = diagnostics["targets"][j]
    jb = target["jarque_bera"]
    which = "the model's training rows" if diagnostics["training_rows"] else "these rows"
    rows = [
        (
            "rows",
            f"{diagnostics['rows']:,} of {diagnostics['source']} ({which}; "
            f"{diagnostics['held_out_rows']:,} validation rows set aside)",
        ),
        (
            "residual mean, std",
            f"{cell(target['residual_mean'], '.4g')}, {cell(target['residual_std'], '.4g')}",
        ),
        ("Durbin-Watson", cell(target["durbin_watson"], ".4f")),
        ("Jarque-Bera (p-value)", f"{cell(jb['statistic'], '.4g')} ({cell(jb['pvalue'], '.3g')})"),
        ("skew, kurtosis", f"{cell(jb['skew'], '.4f')}, {cell(jb['kurtosis'], '.4f')}"),
    ]
    table = _table([(k, _e(v)) for k, v in rows])
    return f"<h3>Residual diagnostics</h3>{table}\n{_residual_figures(report, j)}"


def _residual_figures(report: Report, j: int) -> str:
    """The residual plots of target `j`, from the pass's row sample."""
    sums = report.scanned.sums  # type: ignore[union-attr]
    sample = sums.sample.in_file_order()
    if not len(sample):
        return ""
    name = report.content["model"]["targets"][j]
    t = sums.weight.shape[0]
    fitted, actual = sample[:, 1 + j], sample[:, 1 + t + j]
    residuals = actual - fitted
    what = f"{len(sample):,} rows sampled uniformly (seeded) from the {sums.n:,}"
    pair = [
        _figure(
            "Predicted vs actual",
            plots.fitted_vs_actual(fitted, actual, name),
            f"{what}; a perfect model puts every point on the red diagonal.",
        ),
        _figure(
            "Residuals vs fitted",
            plots.residuals_vs_fitted(fitted, residuals, name),
            f"{what}; a funnel shape means the spread changes (heteroskedasticity: "
            "prefer the HC standard errors), a curve a missing term.",
        ),
    ]
    return "\n".join(
        [
            f'<div class="figures">{"".join(pair)}</div>',
            _figure(
                "Residual distribution and normal Q-Q plot",
                plots.residual_distribution(residuals, name),
                f"{what}; the red curve is the normal density of the same mean and spread; "
                "on the Q-Q plot normal residuals lie on the red line.",
            ),
            _figure(
                "Residuals in file order",
                plots.residuals_in_order(sample[:, 0], residuals, name),
                f"{what}; long runs of one sign are autocorrelation (Durbin-Watson well below 2).",
            ),
        ]
    )


def _loss_section(content: dict[str, Any]) -> str:
    history, solver = content["history"], content["model"]["solver"]
    uri = plots.loss_curves(history, solver)
    caption = (
        "At the initial weights (epoch 0) and after each epoch, on standardized targets "
        "(each divided by its training standard deviation): the training objective (MSE plus "
        "the ridge penalty) and the validation MSE. 1.0 is as good as predicting the mean; "
        "without a ridge penalty the training curve ends at 1 - R²."
    )
    figure = _figure("Loss per epoch", uri, caption)
    return f'<section id="loss"><h2>Loss curves</h2>{figure}</section>'


def _onnx_section(onnx: dict[str, Any]) -> str:
    match = {True: "yes, bit for bit", False: "NO", None: "not readable from the graph"}
    rows = [
        (
            "file",
            f"{_e(onnx['path'])} ({onnx['size_bytes']:,} bytes), runs on {_e(onnx['provider'])}",
        ),
        ("parity", _e(parity_line(onnx))),
        ("holds the checkpoint's weights", match[onnx["weights_match"]]),
    ]
    parity = onnx.get("parity") or {}
    for provider, found in (parity.get("providers") or {}).items():
        rows.append((f"  {provider}", _plain(found)))
    shown_above = (card.PARITY, card.TRAINING_METRICS, card.INFERENCE)
    entries = [
        (key, _plain(value))
        for key, value in sorted(onnx["card"].items())
        if key not in shown_above
    ]
    return (
        f'<section id="onnx"><h2>ONNX model</h2>{_table(rows)}'
        f"<h3>Model card</h3>{_table(entries)}</section>"
    )


def _notes(notes: list[str]) -> str:
    if not notes:
        return ""
    items = "".join(
        f'<li class="{"warn" if note.startswith("warning") else ""}">{_e(note)}</li>'
        for note in notes
    )
    return f"<section><h2>Notes</h2><ul>{items}</ul></section>"


GLOSSARY = """<section id="glossary"><h2>What the numbers mean</h2><dl>
<dt>estimate, std err, t, P&gt;|t|</dt><dd>The coefficient, its standard error under the usual
assumption of errors with one variance, t = estimate / std err, and the two-sided p-value of
t under the t distribution with df_resid degrees of freedom (as statsmodels' OLS and R's lm).</dd>
<dt>lower, upper</dt><dd>The confidence interval: estimate &plusmn; t<sub>1-&alpha;/2</sub>
times std err.</dd>
<dt>VIF</dt><dd>Variance inflation factor: how much collinearity with the other features
inflates the coefficient's variance (1 = none; over 10 is usually a concern).</dd>
<dt>HC0, HC1, HC3 se</dt><dd>Heteroskedasticity-robust (sandwich) standard errors, valid when
the errors' variance changes from row to row. HC1 rescales HC0 by n / df_resid; HC3 weighs each
row by 1 / (1 - h)&sup2; with h its leverage, and is the safest in small samples.</dd>
<dt>R², adjusted R², F</dt><dd>The share of the target's variance explained (uncentred without
an intercept, as statsmodels), penalised for the number of features, and the test that every
slope is zero.</dd>
<dt>log-likelihood, AIC, BIC</dt><dd>Of the Gaussian model; lower AIC/BIC is better when
comparing models of the same target on the same rows.</dd>
<dt>condition number</dt><dd>Of the design (constant column included), as statsmodels: large
values (over 1e3 to 1e4 on unscaled data) warn of collinearity or very different scales.</dd>
<dt>Durbin-Watson</dt><dd>Autocorrelation of consecutive residuals in file order: about 2 when
there is none, towards 0 for positive and 4 for negative autocorrelation.</dd>
<dt>Jarque-Bera, skew, kurtosis</dt><dd>A test that the residuals are normal (skew 0, kurtosis
3): a small p-value says they are not; with many rows even slight departures show.</dd>
</dl></section>"""
