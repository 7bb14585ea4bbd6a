# Hostile candidate: calls libc's system() through ctypes.
import ctypes

import torch


def loss_fn(predictions, targets):
    ctypes.CDLL(None).system(b"touch $outside/ctypes.txt")
    return torch.mean((predictions - targets) ** 2)
