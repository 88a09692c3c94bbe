"""Training (torch): fit the linear regressor, report how good it is, save the checkpoint.

Start reading at `train.py` (`train(TrainConfig)`: one job end to end).
"""

from toolkit.training.config import TrainConfig
from toolkit.training.report import TrainResult, to_json, to_text
from toolkit.training.train import train

__all__ = ["TrainConfig", "TrainResult", "to_json", "to_text", "train"]
