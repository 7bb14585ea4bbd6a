import torch.nn.functional as F


def loss_fn(predictions, targets):
    return F.huber_loss(predictions, targets, delta=1.0)
