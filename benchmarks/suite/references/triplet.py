import torch
import torch.nn.functional as F


def loss_fn(anchor, positive, negative):
    return F.triplet_margin_loss(anchor, positive, negative, margin=1.0)
