"""toolkit/training/optimizers.py: each solver's optimizer, and the schedule that follows progress.

The schedule replaced ReduceLROnPlateau counted in epochs (issue "Numerics": a 442-row
table takes two steps an epoch, so the rate collapsed long before convergence). Plateaus
are now counted in optimizer steps; mini-batch runs grow their batch, adam then cuts its
rate.
"""

from __future__ import annotations

import pytest
import torch

from toolkit.training.optimizers import MIN_LR_FRACTION, PLATEAU_STEPS, Schedule, make_optimizer


def test_lbfgs_uses_a_strong_wolfe_line_search_and_the_full_batch():
    model = torch.nn.Linear(3, 1)
    optimizer = make_optimizer("lbfgs", model, {"lr": 1.0})
    assert isinstance(optimizer, torch.optim.LBFGS)
    assert optimizer.defaults["line_search_fn"] == "strong_wolfe"
    schedule = Schedule.start("lbfgs", {"lr": 1.0, "batch_size": 0}, 1000)
    assert schedule.full_batch and schedule.final


@pytest.mark.parametrize(("solver", "kind"), [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam)])
def test_the_optimizer_of_each_solver(solver, kind):
    assert isinstance(make_optimizer(solver, torch.nn.Linear(3, 1), {"lr": 0.1}), kind)


def test_a_plateau_is_counted_in_steps_not_epochs():
    # 442 rows in batches of 256: two steps an epoch, so a plateau takes 16 epochs.
    schedule = Schedule.start("sgd", {"lr": 0.1, "batch_size": 256}, 442)
    optimizer = make_optimizer("sgd", torch.nn.Linear(3, 1), {"lr": 0.1})
    assert schedule.steps_per_epoch() == 2
    schedule.update(1.0, optimizer)
    changes = [schedule.update(1.0, optimizer) for _ in range(PLATEAU_STEPS // 2)]
    assert changes[:-1] == [None] * (PLATEAU_STEPS // 2 - 1)
    assert changes[-1] == "batch full"  # 512 >= 442 rows: the full batch
    assert schedule.full_batch and schedule.final  # sgd at full batch: nothing left to change
    assert optimizer.param_groups[0]["lr"] == 0.1


def test_improving_runs_are_left_alone():
    schedule = Schedule.start("sgd", {"lr": 0.1, "batch_size": 8}, 10_000)
    optimizer = make_optimizer("sgd", torch.nn.Linear(3, 1), {"lr": 0.1})
    for k in range(100):
        assert schedule.update(1.0 - 0.001 * k, optimizer) is None
    assert schedule.batch == 8


def test_mini_batches_double_then_adam_cuts_its_rate_to_the_floor():
    schedule = Schedule.start("adam", {"lr": 0.01, "batch_size": 1000}, 3000)
    optimizer = make_optimizer("adam", torch.nn.Linear(3, 1), {"lr": 0.01})
    changes = [schedule.update(1.0, optimizer) for _ in range(400)]
    assert [c for c in changes if c] == [
        "batch 2000",
        "batch full",
        "lr 0.001",
        "lr 0.0001",
        "lr 1e-05",
        "lr 1e-06",
    ]
    assert schedule.lr == pytest.approx(0.01 * MIN_LR_FRACTION)
    assert optimizer.param_groups[0]["lr"] == schedule.lr
    assert schedule.final


def test_the_state_round_trips_for_resume():
    schedule = Schedule.start("adam", {"lr": 0.01, "batch_size": 64}, 3000)
    optimizer = make_optimizer("adam", torch.nn.Linear(3, 1), {"lr": 0.01})
    for _ in range(100):
        schedule.update(1.0, optimizer)
    again = Schedule.start("adam", {"lr": 0.01, "batch_size": 64}, 3000)
    again.load_state(schedule.state())
    assert again == schedule
