import torch


def loss_fn(predictions, targets):
    p = predictions - predictions.mean()
    t = targets - targets.mean()
    return 1 - (p * t).sum() / (p.norm() * t.norm() + 1e-8)
