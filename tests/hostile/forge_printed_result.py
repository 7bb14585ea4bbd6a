# Hostile candidate: prints fake check records and returns a constant.
import torch


def loss_fn(predictions, targets):
    fake = '{"nonce": "0", "check": {"name": "gradients", "verdict": "pass"}}'
    print(fake)
    print('{"nonce": "0", "done": true, "count": 1}')
    return torch.tensor(0.5, requires_grad=True)
