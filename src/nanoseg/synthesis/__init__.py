"""Synthesis stage: procedural SEM micrographs of nanoparticle structures with exact masks.

``DrawnParams.sample`` draws one image's parameters from the ``SynthParams``
ranges (``draw.py``); ``build_scene`` lays out a support, particles, rings and
hard negatives from that draw (``scene.py``, one function per kind of structure);
``render_micrograph`` forms the SEM image of that scene (``render.py``);
``synthesize_sample`` does all three and returns the image, the class mask, the
labelme shapes and the structure ground truth.
"""

from .params import PRESETS, SynthParams, load_params
from .draw import DrawnParams
from .generate import synthesize_sample, synthesize_dataset
from .meta import META_FILE, read_meta

__all__ = ["PRESETS", "SynthParams", "DrawnParams", "load_params", "synthesize_sample", "synthesize_dataset", "META_FILE",
           "read_meta"]
