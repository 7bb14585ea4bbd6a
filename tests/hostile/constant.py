# Hostile candidate: returns a constant that ignores its inputs.
import torch


def loss_fn(predictions, targets):
    return torch.tensor(0.5, requires_grad=True)
