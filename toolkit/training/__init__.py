"""Training (torch): fit the linear regressor, report how good it is, save the checkpoint.

Start reading at `train.py` (`train(TrainConfig)`: one job end to end).
"""
