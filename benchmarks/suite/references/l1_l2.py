import torch


def loss_fn(predictions, targets):
    error = predictions - targets
    return 0.5 * (error**2).mean() + 0.5 * error.abs().mean()
