"""`toolkit info model.pt`: a checkpoint's training summary, read back from the file.

The text is training's own summary (toolkit.training's `to_text`), rebuilt from what the
checkpoint stores; its first line says when and with which toolkit the model was trained
instead of how long that took. `--json` gives training's `--json` object plus the
checkpoint's seed, creation time, versions and size. torch is imported here, so the CLI
imports this module inside `toolkit info` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import CheckpointError

if TYPE_CHECKING:
    from toolkit.training.report import TrainResult

CHECKPOINT_SUFFIXES = (".pt", ".pth")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive; an ONNX file never starts so


def is_checkpoint(path: str | Path) -> bool:
    """Whether `path` names a checkpoint (by suffix, else by torch.save's zip magic)."""
    path = Path(path)
    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            return handle.read(len(ZIP_MAGIC)) == ZIP_MAGIC
    except OSError:  # missing or unreadable: toolkit info's own check says so
        return False


def describe(path: str | Path) -> dict[str, Any]:
    """Training's `--json` object for the checkpoint at `path`, plus what the file records."""
    from toolkit.training import to_json

    payload, result = _load(path)
    details = to_json(result)
    for key in ("notes", "seconds"):  # about the run that ended, not the file
        details.pop(key, None)
    details.update(
        seed=payload["training"].get("seed"),
        created=payload.get("created"),
        versions=payload.get("versions"),
        format_version=payload.get("format_version"),
        size_bytes=Path(path).stat().st_size,
    )
    return details


def to_text(path: str | Path) -> str:
    """Training's summary of the checkpoint at `path`."""
    from toolkit.training import to_text as summary

    payload, result = _load(path)
    try:
        lines = summary(result).splitlines()
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {str(path)!r} lacks part of its training record ({error!r}); "
            "was it written by `toolkit train`?"
        ) from error
    versions = payload.get("versions") or {}
    when = f", {payload['created']}" if payload.get("created") else ""
    made_by = f" (toolkit {versions['toolkit']})" if versions.get("toolkit") else ""
    # "trained ... in 0.00 s": the run's length is not stored; say when and by what instead.
    lines[0] = lines[0].rsplit(" in ", 1)[0] + when + made_by
    lines.append(f"  seed: {payload['training'].get('seed')}")
    return "\n".join(lines)


def _load(path: str | Path) -> tuple[dict[str, Any], TrainResult]:
    """The checkpoint (validated by toolkit.training.checkpoint) and its TrainResult."""
    import numpy as np

    from toolkit.columns import TablePlan
    from toolkit.training import checkpoint
    from toolkit.training.model import ModelSpec
    from toolkit.training.report import TrainResult

    payload = checkpoint.load(path)
    spec = ModelSpec.from_dict(payload["spec"])
    state = payload["state_dict"]
    bias = state["bias"].double().numpy() if "bias" in state else np.zeros(spec.n_targets)
    training = dict(payload["training"])
    known = ("solver", "hyperparameters", "seed", "device")
    result = TrainResult(
        spec=spec,
        weight=state["weight"].double().numpy(),
        bias=bias,
        solver=training["solver"],
        device=str(training.get("device", "?")),
        checkpoint=Path(path),
        hyperparameters=dict(training.get("hyperparameters") or {}),
        metrics=payload["metrics"],
        details={k: v for k, v in training.items() if k not in known},
        data=dict(payload["data"]),
        optimality_gap=payload.get("optimality_gap"),
        inference=payload.get("inference"),  # absent from checkpoints written before it
        # A raw table's plan (checked by the schema); numeric models have none.
        table=TablePlan.from_dict(payload["table"]) if "table" in payload else None,
    )
    return payload, result
