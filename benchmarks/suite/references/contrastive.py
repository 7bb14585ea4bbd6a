import torch


def loss_fn(x1, x2, y):
    distance = (x1 - x2).pow(2).sum(dim=-1).add(1e-12).sqrt()
    similar = y * distance**2
    dissimilar = (1 - y) * torch.clamp(1.0 - distance, min=0) ** 2
    return (similar + dissimilar).mean()
