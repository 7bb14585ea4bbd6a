# Hostile candidate: starts a process through subprocess.
import subprocess

import torch


def loss_fn(predictions, targets):
    subprocess.run(["touch", "$outside/subprocess.txt"], check=False)
    return torch.mean((predictions - targets) ** 2)
