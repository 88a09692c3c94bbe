"""Each iterative solver's torch optimizer, and the schedule that follows its progress.

The solvers train on whitened features (`toolkit.training.standardize`): the objective's
Hessian is the identity, so one learning rate suits every table and the only obstacle
between mini-batch SGD and the optimum is the noise of its batches. The schedule removes
that noise by following progress, counted in optimizer steps rather than epochs (a
small table takes two steps an epoch, a large one thousands): once the training objective
has not improved by PLATEAU_RTOL (relative) for PLATEAU_STEPS steps, mini-batch runs
double their batch (Smith et al., "Don't decay the learning rate, increase the batch
size") until they take the full batch, where gradient descent converges linearly to the
optimum; adam, whose steps do not shrink with the gradient, then cuts its learning rate
10x per plateau, down to MIN_LR_FRACTION of --lr. Measured on generated tables of 50 to
100,000 rows, condition numbers to 1e4 and scales 1e-3 to 1e3 (tests/training/
test_convergence.py): sgd and lbfgs end within 1e-9 of the exact R^2, adam within 1e-5.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# An epoch that improves the training objective by less than this (relative) is a plateau.
PLATEAU_RTOL = 1e-4
# At the full batch there is no noise: only an objective that stops improving at all
# (by this much, relative) is a plateau, so adam's slow final approach is not cut short.
FULL_BATCH_PLATEAU_RTOL = 1e-8
# Steps without such an improvement that make a plateau (adam needs a few dozen steps to
# settle after each cut; sgd's noise shows within a few).
PLATEAU_STEPS = 32
BATCH_GROWTH = 2
LR_DECAY_FACTOR = 0.1
MIN_LR_FRACTION = 1e-4


def make_optimizer(solver: str, model: Any, hyper: dict[str, Any]) -> Any:
    """The solver's torch optimizer."""
    import torch

    if solver == "lbfgs":
        return torch.optim.LBFGS(
            model.parameters(),
            lr=hyper["lr"],
            max_iter=20,
            history_size=10,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-12,
            tolerance_change=1e-15,
        )
    if solver == "sgd":
        return torch.optim.SGD(model.parameters(), lr=hyper["lr"])
    return torch.optim.Adam(model.parameters(), lr=hyper["lr"])


@dataclass
class Schedule:
    """Batch size and learning rate as the run progresses; its state goes into resume files.

    `batch` is the global batch (0: full batch); `lr` the current learning rate.
    """

    solver: str
    batch: int
    lr: float
    n_rows: int
    min_lr: float
    best: float = float("inf")  # the best training objective so far
    stalled: int = 0  # steps since it last improved by PLATEAU_RTOL

    @classmethod
    def start(cls, solver: str, hyper: dict[str, Any], n_rows: int) -> Schedule:
        batch = hyper["batch_size"]
        full = solver == "lbfgs" or batch == 0 or batch >= n_rows
        return cls(solver, 0 if full else batch, hyper["lr"], n_rows, hyper["lr"] * MIN_LR_FRACTION)

    @property
    def full_batch(self) -> bool:
        return self.batch == 0

    @property
    def final(self) -> bool:
        """Nothing left to change: full batch, and (adam) the smallest learning rate."""
        return self.full_batch and (self.solver != "adam" or self.lr <= self.min_lr)

    def steps_per_epoch(self) -> int:
        return 1 if self.full_batch else -(-self.n_rows // self.batch)

    def update(self, objective: float, optimizer: Any) -> str | None:
        """After an epoch: grow the batch or cut the learning rate on a plateau; what changed."""
        rtol = FULL_BATCH_PLATEAU_RTOL if self.full_batch else PLATEAU_RTOL
        if objective < self.best * (1 - rtol):
            self.best, self.stalled = objective, 0
            return None
        self.best = min(self.best, objective)
        self.stalled += self.steps_per_epoch()
        if self.stalled < PLATEAU_STEPS or self.final:
            return None
        self.stalled = 0
        if not self.full_batch:
            grown = self.batch * BATCH_GROWTH
            self.batch = 0 if grown >= self.n_rows else grown
            return f"batch {self.batch or 'full'}"
        if self.solver == "adam":
            self.lr = max(self.lr * LR_DECAY_FACTOR, self.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = self.lr
            return f"lr {self.lr:g}"
        return None

    def state(self) -> dict[str, Any]:
        return asdict(self)

    def load_state(self, saved: dict[str, Any]) -> None:
        for key, value in saved.items():
            setattr(self, key, value)
