# Hostile candidate: walks up the stack from a traceback to send passing records itself.
import os

import torch


def loss_fn(predictions, targets):
    try:
        raise ValueError("walk")
    except ValueError as error:
        frame = error.__traceback__.tb_frame
    while frame is not None:
        send = frame.f_locals.get("send")
        if callable(send):
            send({"check": {"name": "gradients", "verdict": "pass"}})
            send({"done": True, "count": 3})
            os._exit(0)
        frame = frame.f_back
    return torch.tensor(0.5, requires_grad=True)
