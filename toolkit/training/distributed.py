"""Training on several processes and machines, launched by torchrun.

torchrun starts one process per slot (a GPU, or a share of the CPUs) and tells each its
RANK, WORLD_SIZE and the rendezvous address. `toolkit train` notices, joins the process
group (gloo on CPU, nccl on CUDA) and:

- reads only its piece of the data (`toolkit.io.DataSource.pieces`);
- `exact`: gathers every process's float64 moments and merges them in rank order, the
  same way on every process, so the model does not depend on how the rows were split
  beyond summation order;
- iterative solvers: wrap the model in DistributedDataParallel, which averages gradients;
- rank 0 alone prints and writes files; an error on any rank is raised on every rank
  and printed once, by rank 0, so no process waits forever for a dead peer; the
  processes leave together at exit, after rank 0 has printed.

What crosses the network: exact sends one (d+t)^2 float64 matrix and a few numbers per
process; the iterative solvers send the gradient ((d+1)*t values) every step and a few
numbers every epoch. The data itself never moves.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from toolkit.errors import DeviceError, ToolkitError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")
E = TypeVar("E", bound=ToolkitError)


@dataclass
class Group:
    """This process's place among the processes of one job (a group of one without torchrun)."""

    rank: int = 0
    world: int = 1
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def gather(self, value: Any) -> list[Any]:
        """Every process's `value` (small, picklable), in rank order, on every process."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums over processes, added in rank order: the same on every process."""
        if self.world == 1:
            return [float(v) for v in values]
        parts = self.gather([float(v) for v in values])
        return [sum(column) for column in zip(*parts, strict=True)]

    def agree(self, work: Callable[[], T]) -> T:
        """Run `work` on every process and return this process's result.

        If `work` raised a ToolkitError on any process, every process raises the error of
        the lowest such rank instead, marked so that only rank 0 prints it. Every process
        must call `agree` at the same point.
        """
        failure: ToolkitError | None = None
        try:
            result = work()
        except ToolkitError as error:
            if self.world == 1:
                raise
            failure, result = error, None
        for error in self.gather(failure):
            if error is not None:
                raise self.printed_by_rank_0(error)
        return result  # type: ignore[return-value]

    def printed_by_rank_0(self, error: E) -> E:
        """Mark an error that every process raises alike: elsewhere than on rank 0 it is
        `quiet`, and the CLI exits with its code without printing it."""
        error.quiet = not self.is_main  # type: ignore[attr-defined]
        return error


def launched() -> bool:
    """Whether torchrun (or another launcher) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: torch.device) -> tuple[Group, torch.device]:
    """Join the job torchrun started, if any; returns the group and this process's device.

    On CUDA every process takes the GPU of its LOCAL_RANK.
    """
    if not launched():
        return Group(), device
    import torch
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    backend = "gloo"
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise DeviceError(
                f"process {rank} has LOCAL_RANK {local}, but only {torch.cuda.device_count()} "
                "CUDA devices are visible; start at most one process per GPU "
                "(torchrun --nproc-per-node), or use --device cpu."
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world)
        atexit.register(_leave)
    return Group(rank, world, backend), device


def _leave() -> None:
    """Leave together: nobody exits before rank 0 has printed the job's result or error.

    torchrun stops every process as soon as one exits with an error, so a rank that
    exited at once could cut off rank 0's message.
    """
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
