# Hostile candidate: sleeps far past any deadline.
import time

import torch


def loss_fn(predictions, targets):
    time.sleep(100_000)
    return torch.mean((predictions - targets) ** 2)
