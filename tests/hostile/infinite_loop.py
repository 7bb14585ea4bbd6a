# Hostile candidate: spins forever without returning.
def loss_fn(predictions, targets):
    while True:
        pass
