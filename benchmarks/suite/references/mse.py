import torch


def loss_fn(predictions, targets):
    return ((predictions - targets) ** 2).mean()
