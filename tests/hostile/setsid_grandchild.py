# Hostile candidate: double-forks a grandchild into its own session that should outlive the job.
import os

import torch


def loss_fn(predictions, targets):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv("/bin/sleep", ["sleep", "$marker"])
        os._exit(0)
    return torch.mean((predictions - targets) ** 2)
