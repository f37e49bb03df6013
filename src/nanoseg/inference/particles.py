"""A segmentation model's particle map, for the structure-first ring finder.

The loop finder (``inference.loops``) builds its chains from a particle map, by default the white
top-hat detector (``rings.particle_map``). ``ModelParticles`` is the alternative: a model trained
on particle maps (every particle of a synthetic image painted as a disc:
``synthesis.particle_masks``; recipe ``benchmarks/particle_model.py``) predicts the particle
probability, thresholded at the value chosen on synthetic validation images and recorded in the
checkpoint (``spec["particle_threshold"]``). Pass it as ``find_loops(..., particle_finder=...)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import NanosegError

DEFAULT_THRESHOLD = 0.5  # a checkpoint without a recorded threshold: the more likely class


class ModelParticles:
    """Callable ``(H, W) uint8 -> (H, W) bool``: where the model's particle probability is at least the threshold.

    Parameters
    ----------
    model_path : str or Path
        A two-class checkpoint (background, particle) trained on particle maps.
    threshold : float, optional
        Probability threshold (0-1); default: the checkpoint's ``particle_threshold``, else 0.5.
    device : str
        Where the model runs (``auto``, ``cpu``, ``cuda``, ...).
    """

    def __init__(self, model_path: str | Path, *, threshold: float | None = None, device: str = "cpu"):
        from ..models.checkpoint import load_model
        from .engine import Predictor

        model, spec = load_model(model_path, device="cpu")
        if spec.get("num_classes") != 2:
            raise NanosegError(f"--particle-model: {model_path} has {spec.get('num_classes')} classes; a particle "
                               f"model has two (background, particle)")
        t = spec.get("particle_threshold", DEFAULT_THRESHOLD) if threshold is None else threshold
        if not 0 < float(t) < 1:
            raise NanosegError(f"--particle-threshold: {t!r} must lie between 0 and 1")
        self.threshold = float(t)
        self.spec = spec
        self.path = Path(model_path)
        self.predictor = Predictor(model, device=device)

    def probs(self, image: np.ndarray) -> np.ndarray:
        """The particle probability (H, W) float32 of an 8-bit grayscale image."""
        return self.predictor.probs(image)[1]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.probs(image) >= self.threshold
