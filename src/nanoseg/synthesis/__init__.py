"""Synthesis stage: procedural SEM micrographs of nanoparticle structures with exact masks.

``build_scene`` lays out a support, particles, rings and hard negatives;
``render_micrograph`` forms the SEM image of that scene; ``synthesize_sample``
does both and returns the image, the class mask, the labelme shapes and the
structure ground truth.
"""

from .params import PRESETS, SynthParams, load_params
from .generate import synthesize_sample, synthesize_dataset
from .meta import META_FILE, read_meta

__all__ = ["PRESETS", "SynthParams", "load_params", "synthesize_sample", "synthesize_dataset", "META_FILE",
           "read_meta"]
