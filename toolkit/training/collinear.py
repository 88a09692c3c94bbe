"""The exact solver's errors for weights that are not unique: a flat column, or columns
in a linear relation (named, with the relation, from the null direction)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from toolkit.errors import CollinearityError

# Columns a collinearity message names (a categorical column's dummies can be hundreds).
SHOWN_COLUMNS = 8


def flat_column_error(name: str, intercept: bool) -> CollinearityError:
    if intercept:
        return CollinearityError(
            f"feature {name!r} is constant, so it is collinear with the intercept and its "
            "weight is not unique. Leave it out with --features, fit without an intercept "
            "(--no-intercept), or add a ridge penalty (--l2)."
        )
    return CollinearityError(
        f"feature {name!r} is zero in every row, so its weight is not unique. "
        "Leave it out with --features or add a ridge penalty (--l2)."
    )


def collinear_error(
    direction: np.ndarray,
    scale: np.ndarray,
    unit: np.ndarray,
    feature_names: Sequence[str],
    centre: np.ndarray | None = None,
) -> CollinearityError:
    """Name the columns in the null direction and the linear relation between them.

    `direction` is in scaled units: column i's raw scale is scale[i] * unit[i]. `centre`:
    the features' raw means when the model has an intercept; the relation's constant
    then names the intercept, which takes part (two categorical columns' dummies that
    add up to 1, say). Past SHOWN_COLUMNS columns, the largest parts are named.
    """
    v = np.asarray(direction)
    ratio = np.asarray(scale) * np.asarray(unit)  # column i's raw scale
    involved = [i for i in np.argsort(-np.abs(v)) if abs(v[i]) >= 0.01 * np.abs(v).max()]
    k, others = involved[0], involved[1:]
    coefficients = {i: -(v[i] / v[k]) * (ratio[k] / ratio[i]) for i in others}
    constant = size = 0.0
    if centre is not None:  # x_k = constant + sum(c_i x_i): the constant at the means
        constant = float(centre[k]) - sum(c * float(centre[i]) for i, c in coefficients.items())
        size = abs(float(centre[k])) + sum(
            abs(c * float(centre[i])) for i, c in coefficients.items()
        )
    # A constant past rounding's reach: the intercept is part of the relation.
    with_intercept = abs(constant) > 1e-9 * max(size, 1e-300)
    shown = sorted(others[: SHOWN_COLUMNS - 1])
    terms = [
        f"{'-' if coefficients[i] < 0 else '+'} {abs(coefficients[i]):.4g}*{feature_names[i]}"
        for i in shown
    ]
    if len(others) > len(shown):
        terms.append(f"+ ... ({len(others) - len(shown)} more terms)")
    names = ", ".join(repr(feature_names[i]) for i in sorted([k, *shown]))
    if len(involved) > SHOWN_COLUMNS:  # a many-level column's dummies: the largest parts
        names += f" and {len(involved) - SHOWN_COLUMNS} more"
    remedy = "Leave one of them out with --features, or add a ridge penalty (--l2)."
    if with_intercept:
        terms.insert(0, f"{'-' if constant < 0 else '+'} {abs(constant):.4g}")
        names += " and the intercept"
        remedy = (
            "Leave one of the features out with --features, fit without an intercept "
            "(--no-intercept), or add a ridge penalty (--l2)."
        )
    relation = f"{feature_names[k]} ≈ " + " ".join(terms).removeprefix("+ ")
    return CollinearityError(
        f"features {names} are collinear ({relation}), so the least-squares weights are not "
        f"unique. {remedy}"
    )
