"""The iterative solvers: epochs over the spilled rows, as one run object with named steps.

    sgd     torch.optim.SGD + MSELoss, the tutorial's method, done right.
    adam    torch.optim.Adam + MSELoss.
    lbfgs   torch.optim.LBFGS with a strong-Wolfe line search, full batch.

They train on whitened features and standardized targets (`toolkit.training.standardize`),
where the objective's Hessian is the identity, and fold the scaling back into the final
weights. The schedule (`toolkit.training.optimizers.Schedule`) follows progress: on a
plateau of the training objective mini-batch runs double their batch until they take
the full batch, and adam then cuts its learning rate. Once nothing is left to change, a
run stops after --patience epochs without a relative improvement of the training
objective, and keeps the last weights: the objective is convex, so they are the
converged ones. The validation loss is reported, not used to stop: the goal is the
least-squares optimum on the training rows, which the exact solver defines.

A run whose objective becomes non-finite, or rises well above its starting value,
diverged: an error that names the epoch, and nothing is saved.

Under torchrun the model is wrapped in DistributedDataParallel; each process steps on
batches of its own rows (--batch-size / processes of them), and every loss that decides
something (learning rate, early stopping, divergence) is summed over all processes
first, so they all decide alike.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.errors import TrainingError
from toolkit.training import resume
from toolkit.training.batches import shuffled_batches, squares
from toolkit.training.model import ModelSpec, build_model
from toolkit.training.optimizers import Schedule, make_optimizer
from toolkit.training.rows import Rows, Split
from toolkit.training.standardize import Standardizer

if TYPE_CHECKING:
    import torch

    from toolkit.training.config import TrainConfig
    from toolkit.training.distributed import Group

EpochCallback = Callable[[int, dict[str, float]], None]

# An improvement smaller than this fraction of the best loss does not reset patience.
MIN_RELATIVE_IMPROVEMENT = 1e-9
# A training objective above this multiple of its starting value means the run diverged.
DIVERGENCE_FACTOR = 10.0


@dataclass
class EarlyStopping:
    """Counts the epochs since the monitored loss last improved; `patience` 0 never stops."""

    patience: int
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, epoch: int, loss: float, counting: bool = True) -> None:
        """Record the epoch's loss; without `counting` (the schedule is still changing
        things) an epoch without improvement does not use up patience."""
        if loss < self.best_loss * (1 - MIN_RELATIVE_IMPROVEMENT):
            self.best_loss, self.best_epoch, self.bad_epochs = loss, epoch, 0
        elif counting:
            self.bad_epochs += 1

    @property
    def exhausted(self) -> bool:
        return bool(self.patience) and self.bad_epochs >= self.patience

    def state(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in ("best_loss", "best_epoch", "bad_epochs")}

    def load_state(self, saved: dict[str, Any]) -> None:
        self.best_loss, self.best_epoch = saved["best_loss"], saved["best_epoch"]
        self.bad_epochs = saved["bad_epochs"]


class IterativeRun:
    """One fit by sgd, adam or lbfgs, in named steps.

    `__init__` sets up the scaling, the seeded model and the optimizer; `fit` restores the
    saved state with --resume and runs `_epochs`. Each `_epoch` steps (`_full_batch_step`
    or `_minibatch_epoch`: chunks in a seeded order, rows shuffled in each chunk), then
    computes `_losses`, checks them (`_check_finite`) and updates the learning-rate
    schedule and `EarlyStopping`; `_snapshot` is the resume state after it.
    """

    def __init__(
        self,
        config: TrainConfig,
        hyper: dict[str, Any],
        spec: ModelSpec,
        split: Split,
        device: Any,
        group: Group,
    ) -> None:
        import torch

        self.config, self.hyper, self.spec = config, hyper, spec
        self.device, self.group = device, group
        self.train_rows: Rows = split.train
        self.val_rows: Rows | None = split.val
        self.n_train, self.n_val = split.n_train, split.n_val
        self.scaling = Standardizer(split.moments, spec, hyper["l2"])
        self.dtype = getattr(torch, spec.dtype)
        self.n_cells = self.n_train * spec.n_targets  # values per epoch: the losses' divisor
        # Weighted rows weigh w / mean(w): the objective sum(w r^2) + l2 |w|^2 scaled by
        # n / sum(w), so the penalty's l2 is too; validation rows count by their weights.
        relative = self.scaling.relative or 1.0
        self.l2 = hyper["l2"] * relative
        self.val_cells = self.n_val * spec.n_targets
        if self.scaling.relative is not None:
            self.val_cells = split.val_weight_sum * relative * spec.n_targets
        # The ridge objective ||y - Xw - b||^2 + l2 ||w||^2, divided by n * t * sy^2 to be in
        # the units of MSELoss on the scaled targets, penalises l2 ||c M^T||^2 / (n * t)
        # for whitened coefficients c (M: the scaling's penalty matrix).
        self.penalty_matrix = torch.as_tensor(
            self.scaling.penalty_matrix.T, dtype=self.dtype, device=device
        )
        self.model, self.generator = self._initial_model()
        self.optimizer = make_optimizer(config.solver, self.model, hyper)
        self.schedule = Schedule.start(config.solver, hyper, self.n_train)
        self.net: Any = self.model  # wrapped for DistributedDataParallel by `fit`
        self.stopping = EarlyStopping(hyper["patience"])
        self.start = 0
        self.start_loss = math.nan  # the training objective before the first step
        self.history: dict[str, list[float]] = {}  # losses at epochs 0, 1, ...: report's curves

    def _initial_model(self) -> tuple[torch.nn.Linear, torch.Generator]:
        """nn.Linear's own initialisation, but drawn from the seeded generator."""
        import torch

        model = build_model(self.spec, device="cpu")
        generator = torch.Generator().manual_seed(self.config.seed)
        with torch.no_grad():
            bound = 1.0 / math.sqrt(self.spec.n_features)
            model.weight.uniform_(-bound, bound, generator=generator)
            if model.bias is not None:
                model.bias.uniform_(-bound, bound, generator=generator)
        return model.to(self.device), generator

    def fit(
        self, fingerprint: dict[str, Any], on_epoch_end: EpochCallback | None
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Run the epochs (continuing the saved run with --resume); raw-unit weights and details."""
        if self.config.resume:
            saved = resume.agreed_state(self.group, self.config.out, fingerprint)
            self.start = resume.restore(
                saved, self.model, self.optimizer, None, self.generator, self.group.rank
            )
            self.stopping.load_state(saved)
            self.schedule.load_state(saved["schedule"])
            self.start_loss = saved["start_loss"]
            self.history = saved.get("history", {})
        else:
            self.history = {key: [value] for key, value in self._losses().items()}  # epoch 0
            self.start_loss = self.history["train"][0]
        self.net = self._wrapped()
        epoch, stopped_early = self._epochs(fingerprint, on_epoch_end)
        weight, bias = self.scaling.unscale(self.model)
        details = {
            "epochs_run": epoch,
            "best_epoch": self.stopping.best_epoch,
            "stopped_early": stopped_early,
            "resumed_from_epoch": self.start if self.config.resume else None,
            "best_loss_standardized": self.stopping.best_loss,
            "monitored": "train",
            "final_batch": self.schedule.batch or "full",
            "final_lr": self.schedule.lr,
        }
        return weight, bias, details

    def _wrapped(self) -> Any:
        """Under torchrun, the model in DistributedDataParallel (which averages gradients)."""
        if self.group.world == 1:
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        device = self.device
        return DistributedDataParallel(
            self.model, device_ids=[device.index] if device.type == "cuda" else None
        )

    def _epochs(
        self, fingerprint: dict[str, Any], on_epoch_end: EpochCallback | None
    ) -> tuple[int, bool]:
        """Epochs until --epochs or early stopping: the last epoch, and whether it stopped early."""
        epochs = self.hyper["epochs"]
        state: dict[str, Any] | None = None
        autosave = resume.Autosave(self.config.out, self.group.is_main)
        stopped_early = False
        bar = _progress_bar(self.config, epochs, self.start, self.group.is_main)
        epoch = self.start
        try:
            for epoch in range(self.start + 1, epochs + 1):
                current = self._epoch(epoch)
                for key, value in current.items():
                    self.history.setdefault(key, []).append(value)
                state = self._snapshot(epoch, fingerprint)
                autosave(state, last_epoch=epoch >= epochs)
                bar.update(1)
                bar.set_postfix({k: f"{v:.3g}" for k, v in current.items()}, refresh=False)
                if on_epoch_end is not None:
                    on_epoch_end(epoch, current)
                if self.stopping.exhausted:
                    stopped_early = True
                    break
        except KeyboardInterrupt:
            bar.close()
            raise resume.interrupted(
                self.group, self.config.out, state, self.start, epochs
            ) from None
        bar.close()
        return epoch, stopped_early

    def _epoch(self, epoch: int) -> dict[str, float]:
        """One epoch of optimizer steps, then the losses that decide what comes next."""
        self.model.train()
        if self.config.solver == "lbfgs":
            self.optimizer.step(self._full_batch_step)
        elif self.schedule.full_batch:
            self._full_batch_step()
            self.optimizer.step()
        else:
            self._minibatch_epoch()
        self.model.eval()
        current = self._losses()
        self._check_finite(epoch, current)
        self._check_not_diverging(epoch, current["train"])
        counting = self.schedule.final  # patience runs once the schedule has done its part
        self.schedule.update(current["train"], self.optimizer)
        self.stopping.update(epoch, current["train"], counting)
        return current

    def _penalty(self) -> torch.Tensor:
        import torch

        if not self.l2:
            return torch.zeros((), dtype=self.dtype, device=self.device)
        raw = self.model.weight @ self.penalty_matrix
        return self.l2 * (raw**2).sum() / self.n_cells

    def _tensors(self, block: np.ndarray) -> tuple[torch.Tensor, ...]:
        return self.scaling.tensors(block, self.dtype, self.device)

    def _full_batch_step(self) -> torch.Tensor:
        """Gradient of the whole objective, accumulated chunk by chunk; returns its value.

        DistributedDataParallel averages gradients over processes, so each one weighs its
        sum of squares by processes / (n * t): the average is the global mean's gradient.
        """
        import torch

        net, group, rows = self.net, self.group, self.train_rows
        self.optimizer.zero_grad(set_to_none=True)
        ids = rows.chunk_ids()
        weight = group.world / self.n_cells
        local_sse = 0.0
        if not ids:  # no rows here: still take part in the gradient average
            empty = torch.zeros(0, self.spec.n_features, dtype=self.dtype, device=self.device)
            (net(empty).sum() + self._penalty()).backward()
        for i, block in enumerate(rows.blocks(ids)):
            x, y, *w = self._tensors(block)
            last = i == len(ids) - 1
            with contextlib.nullcontext() if last or group.world == 1 else net.no_sync():
                sse = squares(net(x), y, w).sum()
                (sse * weight + (self._penalty() if last else 0.0)).backward()
            local_sse += float(sse.detach())
        (total,) = group.sum([local_sse])
        return torch.tensor(total / self.n_cells + float(self._penalty().detach()))

    def _minibatch_epoch(self) -> None:

        net, optimizer, penalty = self.net, self.optimizer, self._penalty
        join: Any = contextlib.nullcontext()
        if self.group.world > 1:
            from torch.distributed.algorithms.join import Join

            join = Join([net])
        batch = max(1, -(-self.schedule.batch // self.group.world))  # each process's share
        batches = shuffled_batches(
            self.train_rows, self._tensors, batch, self.generator, self.device
        )
        with join:
            for xb, yb, *wb in batches:
                optimizer.zero_grad(set_to_none=True)
                loss = squares(net(xb), yb, wb).mean() + penalty()
                loss.backward()
                optimizer.step()

    def _losses(self) -> dict[str, float]:
        """Objective on the training rows, and MSE on the validation rows (standardized)."""
        import torch

        with torch.no_grad():
            sums = [0.0, 0.0]
            for index, rows in enumerate((self.train_rows, self.val_rows)):
                for block in rows.blocks() if rows is not None else ():
                    x, y, *w = self._tensors(block)
                    sums[index] += float(squares(self.model(x), y, w).sum())
            sse_train, sse_val = self.group.sum(sums)
            result = {"train": sse_train / self.n_cells + float(self._penalty())}
            if self.val_rows is not None:
                result["val"] = sse_val / self.val_cells
        return result

    def _check_finite(self, epoch: int, current: dict[str, float]) -> None:
        """A non-finite loss or weight means the run diverged: stop, saving nothing."""
        import torch

        bad = [k for k, v in current.items() if not math.isfinite(v)]
        finite_weights = all(bool(torch.isfinite(p).all()) for p in self.model.parameters())
        if not bad and finite_weights:
            return
        which = bad[0] if bad else "train"
        lr = self.hyper["lr"]
        # The losses are global: every process diverged alike.
        raise self.group.printed_by_rank_0(
            TrainingError(
                f"training diverged at epoch {epoch}: the {which} loss became "
                f"{current.get(which, math.nan)}. The learning rate is too large for "
                f"this data; try a smaller --lr (now {lr:g}, e.g. --lr {lr / 10:g}). "
                "Nothing was saved."
            )
        )

    def _check_not_diverging(self, epoch: int, loss: float) -> None:
        """A finite objective far above where it started: the steps overshoot."""
        if not loss > DIVERGENCE_FACTOR * self.start_loss:
            return
        lr = self.hyper["lr"]
        raise self.group.printed_by_rank_0(
            TrainingError(
                f"training diverged at epoch {epoch}: the training loss rose from "
                f"{self.start_loss:.4g} to {loss:.4g} (more than {DIVERGENCE_FACTOR:g}x its "
                f"starting value). The learning rate is too large for this data; try a "
                f"smaller --lr (now {lr:g}, e.g. --lr {lr / 10:g}). Nothing was saved."
            )
        )

    def _snapshot(self, epoch: int, fingerprint: dict[str, Any]) -> dict[str, Any]:
        generators = self.group.gather(self.generator.get_state())
        progress = {
            **self.stopping.state(),
            "schedule": self.schedule.state(),
            "start_loss": self.start_loss,
            "history": {key: list(values) for key, values in self.history.items()},
        }
        return resume.snapshot(
            fingerprint, epoch, self.model, self.optimizer, None, generators, progress
        )


def _progress_bar(config: TrainConfig, epochs: int, start: int, show: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=epochs,
        initial=start,
        desc=config.solver,
        unit="epoch",
        file=sys.stderr,
        disable=not (config.progress and show),
        leave=False,
        dynamic_ncols=True,
    )
