import torch
import torch.nn.functional as F


def loss_fn(logits, targets):
    return F.binary_cross_entropy_with_logits(logits, targets)
