# Hostile candidate: runs a shell command through os.system.
import os

import torch


def loss_fn(predictions, targets):
    os.system("touch $outside/system.txt")
    return torch.mean((predictions - targets) ** 2)
