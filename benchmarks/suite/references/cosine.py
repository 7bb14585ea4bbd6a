import torch
import torch.nn.functional as F


def loss_fn(a, b):
    return (1 - F.cosine_similarity(a, b, dim=-1)).mean()
