# Hostile candidate: prints 2 MiB of output on every call.
import torch


def loss_fn(predictions, targets):
    for _ in range(64):
        print("x" * 32768)
    return torch.mean((predictions - targets) ** 2)
