# Hostile candidate: writes fake records to every open descriptor and exits with status 0.
import os


def loss_fn(predictions, targets):
    for fd in range(3, 16):
        try:
            os.write(fd, b'{"nonce": "0", "check": {"name": "runs", "verdict": "pass"}}\n')
            os.write(fd, b'{"nonce": "0", "done": true, "count": 1}\n')
        except OSError:
            pass
    os._exit(0)
