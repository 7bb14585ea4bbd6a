# Hostile candidate: writes a file outside its directory through builtins.
import torch


def loss_fn(predictions, targets):
    with open("$outside/escaped.txt", "w") as handle:
        handle.write("escaped")
    return torch.mean((predictions - targets) ** 2)
