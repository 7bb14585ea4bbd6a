# Hostile candidate: exits with status 0 before any check reports.
import os


def loss_fn(predictions, targets):
    os._exit(0)
