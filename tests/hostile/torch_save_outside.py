# Hostile candidate: writes a file outside its directory through torch.save.
import torch


def loss_fn(predictions, targets):
    torch.save(predictions, "$outside/escaped.pt")
    return torch.mean((predictions - targets) ** 2)
