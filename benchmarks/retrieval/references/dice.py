import torch


def loss_fn(logits, masks):
    p = torch.sigmoid(logits).reshape(logits.shape[0], -1)
    m = masks.reshape(masks.shape[0], -1)
    score = (2 * (p * m).sum(1) + 1) / (p.sum(1) + m.sum(1) + 1)
    return (1 - score).mean()
