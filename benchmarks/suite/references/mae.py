import torch


def loss_fn(predictions, targets):
    return (predictions - targets).abs().mean()
