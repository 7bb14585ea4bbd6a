# Hostile candidate: walks up the stack with sys._getframe to send passing records itself.
import os
import sys

import torch


def loss_fn(predictions, targets):
    frame = sys._getframe(1)
    while frame is not None:
        send = frame.f_locals.get("send")
        if callable(send):
            for name in ("signature", "runs", "scalar", "finite", "gradients"):
                send({"check": {"name": name, "verdict": "pass"}})
            send({"done": True, "count": 7})
            os._exit(0)
        frame = frame.f_back
    return torch.tensor(0.5, requires_grad=True)
