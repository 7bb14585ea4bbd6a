# Hostile candidate: allocates 1 GiB tensors until memory runs out.
import torch


def loss_fn(predictions, targets):
    hoard = []
    while True:
        hoard.append(torch.ones(256 * 1024 * 1024))
