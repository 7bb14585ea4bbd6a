import torch


def loss_fn(predictions, targets):
    return ((torch.log1p(predictions) - torch.log1p(targets)) ** 2).mean()
