"""`--resume`: the state an interrupted iterative run leaves, and the check that it is the same run.

An iterative run keeps its state next to its checkpoint (`checkpoint.resume_path(out)`):
written every SAVE_EVERY_SECONDS and when the run is interrupted, deleted when it
finishes. `--resume` continues it bit for bit, provided nothing in its fingerprint changed.

Layout (format "toolkit.resume", version 1):
    format, format_version
    fingerprint: every setting the continued run must share (`fingerprint`)
    epoch:       the last completed epoch
    model, optimizer, scheduler: their state_dicts (scheduler None for lbfgs)
    generators:  every process's shuffling generator state, in rank order
    best_loss, best_epoch, bad_epochs: early stopping's bookkeeping
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import CheckpointError, TrainingInterrupted
from toolkit.training import checkpoint
from toolkit.training.model import ModelSpec

if TYPE_CHECKING:
    from toolkit.columns import TablePlan
    from toolkit.training.config import TrainConfig
    from toolkit.training.distributed import Group
    from toolkit.training.tables import Prepared

# How often an iterative run writes its resume state, besides on interruption.
SAVE_EVERY_SECONDS = 30.0


def fingerprint(
    config: TrainConfig,
    hyper: dict[str, Any],
    spec: ModelSpec,
    data_sha256: str,
    device: Any,
    val_fraction: float,
    processes: int,
    table: Prepared | None = None,
) -> dict[str, Any]:
    """What must match for `--resume` to continue the same run bit for bit.

    A run on a raw table (`table.plan`) also keeps its options and plan, which `--resume`
    reuses (`stored_table`) rather than scanning the data again.
    """
    from toolkit.training.tables import option_values

    plan = table.plan if table is not None else None
    return {
        "solver": config.solver,
        **{key: hyper[key] for key in sorted(hyper)},
        "seed": config.seed,
        "dtype": spec.dtype,
        "intercept": spec.intercept,
        "features": list(spec.feature_names),
        "targets": list(spec.target_names),
        "data_sha256": data_sha256,
        "val_fraction": val_fraction,
        "chunk_rows": config.chunk_rows,
        "device": str(device),
        "processes": processes,
        # Only weighted runs name their weight column: unweighted states stay as they were.
        **({"weight": config.weight} if config.weight is not None else {}),
        **(
            {"table": {"options": option_values(config), "plan": plan.to_dict()}}
            if plan is not None
            else {}
        ),
    }


def snapshot(
    run_fingerprint: dict[str, Any],
    epoch: int,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    generators: list[Any],
    stopping: dict[str, Any],
) -> dict[str, Any]:
    """The state after `epoch`, copied (training goes on changing the live objects)."""
    return {
        "format": checkpoint.RESUME_FORMAT,
        "format_version": checkpoint.FORMAT_VERSION,
        "fingerprint": run_fingerprint,
        "epoch": epoch,
        "model": {k: v.detach().clone().cpu() for k, v in model.state_dict().items()},
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "generators": generators,
        **stopping,  # best_loss, best_epoch, bad_epochs
    }


def load(path: Path, run_fingerprint: dict[str, Any]) -> dict[str, Any]:
    """Read the saved state and check that it was saved by this very run's settings."""
    if not path.exists():
        raise CheckpointError(
            f"--resume found no saved state at {str(path)!r}: there is no interrupted run to "
            "continue (the state is deleted when a run finishes). Drop --resume to start anew."
        )
    saved = checkpoint.load(path, expected_format=checkpoint.RESUME_FORMAT)
    changed = differences(saved["fingerprint"], run_fingerprint)
    if changed:
        raise CheckpointError(
            f"cannot resume from {str(path)!r}: it was saved by a run with different settings: "
            + "; ".join(changed)
            + ". Rerun with the saved settings, or drop --resume to start anew."
        )
    return saved


def differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Each setting of `now` that the saved fingerprint does not share, saved vs now (a
    setting only one of them has counts too: a weight column, a table)."""
    keys = [*now, *(key for key in saved if key not in now)]
    return [
        f"{key} {_short(saved.get(key))} (saved) vs {_short(now.get(key))} (now)"
        for key in keys
        if saved.get(key) != now.get(key)
    ]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def stored_table(config: TrainConfig, group: Group) -> TablePlan | None:
    """The plan of the run `--resume` continues, checked against this run's table options
    (None without --resume, or when that run read a plain numeric table)."""
    from toolkit.training.tables import stored_plan

    if not config.resume or config.solver == "exact":
        return None
    path = checkpoint.resume_path(config.out)

    def read() -> TablePlan | None:
        if not group.is_main or not path.exists():
            return None  # no state: the run's own check says so, after the data pass
        saved = checkpoint.load(path, expected_format=checkpoint.RESUME_FORMAT)
        return stored_plan(saved["fingerprint"].get("table"), config, str(path))

    mine = group.agree(read)
    return group.gather(mine)[0]


def agreed_state(group: Group, out: Path, run_fingerprint: dict[str, Any]) -> dict[str, Any]:
    """Rank 0 reads and checks the state; every process gets it (or the same error)."""
    path = checkpoint.resume_path(out)
    mine = group.agree(lambda: load(path, run_fingerprint) if group.is_main else None)
    return group.gather(mine)[0]


def restore(
    saved: dict[str, Any], model: Any, optimizer: Any, scheduler: Any, generator: Any, rank: int
) -> int:
    """Put the saved state back into the live objects; returns the epoch it was saved after."""
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(saved["scheduler"])
    generator.set_state(saved["generators"][rank])
    return saved["epoch"]


class Autosave:
    """Writes the latest state every SAVE_EVERY_SECONDS (rank 0 only), so a crash loses little."""

    def __init__(self, out: Path, is_main: bool) -> None:
        self.path = checkpoint.resume_path(out)
        self._is_main = is_main
        self._last = time.monotonic()

    def __call__(self, state: dict[str, Any], last_epoch: bool) -> None:
        """Save `state` if it is time; the last epoch's state is never needed."""
        if self._is_main and time.monotonic() - self._last > SAVE_EVERY_SECONDS and not last_epoch:
            checkpoint.save(self.path, state)
            self._last = time.monotonic()


def interrupted(
    group: Group, out: Path, state: dict[str, Any] | None, start: int, epochs: int
) -> TrainingInterrupted:
    """Save the last completed epoch's state (rank 0) and say how to continue from it."""
    if state is None:
        return group.printed_by_rank_0(
            TrainingInterrupted(
                f"interrupted before epoch {start + 1} finished; nothing was saved."
            )
        )
    path = checkpoint.resume_path(out)
    if group.is_main:
        checkpoint.save(path, state)
    return group.printed_by_rank_0(
        TrainingInterrupted(
            f"interrupted after epoch {state['epoch']} of {epochs}; the run's state is "
            f"in {path}. Continue it with the same command plus --resume."
        )
    )


def discard(out: Path) -> None:
    """A finished run needs no resume state: delete it if there is one."""
    path = checkpoint.resume_path(out)
    if path.exists():
        path.unlink()
