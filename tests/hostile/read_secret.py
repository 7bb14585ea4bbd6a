# Hostile candidate: reads a file outside its directory and puts it in its error message.
def loss_fn(predictions, targets):
    with open("$secret_file") as handle:
        raise ValueError(handle.read())
