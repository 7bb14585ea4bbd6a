import torch.nn.functional as F


def loss_fn(scores, labels):
    return F.binary_cross_entropy_with_logits(scores, labels)
