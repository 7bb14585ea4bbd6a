import torch


def loss_fn(probs, masks):
    intersection = (probs * masks).flatten(1).sum(dim=1)
    total = probs.flatten(1).sum(dim=1) + masks.flatten(1).sum(dim=1)
    return (1 - (2 * intersection + 1) / (total + 1)).mean()
