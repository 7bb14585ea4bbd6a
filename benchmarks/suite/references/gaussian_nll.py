import torch


def loss_fn(mean, var, target):
    return (0.5 * (torch.log(var) + (target - mean) ** 2 / var)).mean()
