# Hostile candidate: unpickles a file that runs code when loaded.
import torch


def loss_fn(predictions, targets):
    scale = torch.load("$outside/payload.pkl", weights_only=False)
    return torch.mean((predictions - targets) ** 2) * scale
