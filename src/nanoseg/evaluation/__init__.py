"""Evaluation stage: PaddleSeg pixel metrics (``metrics``), ring-structure matching (``structures``)
and evaluation of models, checkpoints and mask folders with one tile rule (``evaluate``)."""
