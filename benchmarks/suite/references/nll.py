import torch


def loss_fn(log_probs, targets):
    return -log_probs.gather(1, targets.unsqueeze(1)).mean()
