import torch


def loss_fn(scores, labels):
    return (torch.clamp(1 - labels * scores, min=0) ** 2).mean()
