import torch


def loss_fn(predictions, targets, weights):
    return (weights * (predictions - targets) ** 2).sum() / weights.sum()
