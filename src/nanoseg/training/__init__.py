"""Training stage: settings (``config``), losses and the training loop (``train``)."""
