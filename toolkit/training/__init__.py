"""Training (torch): fit the linear regressor, report how good it is, save the checkpoint.

Start reading at `train.py` (`train(TrainConfig)`: one job end to end, in named steps).

    config        TrainConfig, checked against one table of parameters
    tables        raw tables: the scan before the pass, the plan every process shares
    readpass      the one pass over the data: split, sums, spills
    rows          the spilled rows read back, and sums over every process's rows
    exact         closed-form least squares (--solver exact)
    iterative     sgd, adam, lbfgs as a run object (with optimizers, standardize)
    resume        an interrupted run's state: written, read and checked
    report        TrainResult; to_text, to_json; the optimality gap; the checkpoint payload
    checkpoint    the files; model, metrics, spill, device, distributed: the parts
"""

from toolkit.training.config import TrainConfig
from toolkit.training.report import TrainResult, to_json, to_text
from toolkit.training.train import train

__all__ = ["TrainConfig", "TrainResult", "to_json", "to_text", "train"]
