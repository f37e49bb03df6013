"""Training and evaluation stage: losses, PaddleSeg metrics, the training loop, checkpoints."""
