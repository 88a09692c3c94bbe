"""toolkit/training/optimizers.py: each solver's optimizer and learning-rate schedule."""

from __future__ import annotations

import pytest
import torch

from toolkit.training.optimizers import make_optimizer


def test_lbfgs_uses_a_strong_wolfe_line_search_and_no_schedule():
    model = torch.nn.Linear(3, 1)
    optimizer, scheduler = make_optimizer("lbfgs", model, {"lr": 1.0})
    assert isinstance(optimizer, torch.optim.LBFGS)
    assert optimizer.defaults["line_search_fn"] == "strong_wolfe"
    assert scheduler is None


@pytest.mark.parametrize(("solver", "kind"), [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam)])
def test_sgd_and_adam_cut_the_rate_10x_on_a_plateau(solver, kind):
    model = torch.nn.Linear(3, 1)
    optimizer, scheduler = make_optimizer(solver, model, {"lr": 0.1})
    assert isinstance(optimizer, kind)
    scheduler.step(1.0)
    for _ in range(4):  # LR_DECAY_PATIENCE (3) epochs without improvement, then the cut
        scheduler.step(1.0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    assert scheduler.min_lrs == [pytest.approx(0.1 * 1e-6)]
