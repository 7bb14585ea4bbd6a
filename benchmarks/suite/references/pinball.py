import torch


def loss_fn(predictions, targets):
    error = targets - predictions
    return torch.maximum(0.9 * error, (0.9 - 1) * error).mean()
