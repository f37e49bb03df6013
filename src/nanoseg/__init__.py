"""nanoseg: segment nanoparticle ring structures in SEM micrographs.

Stages, one subpackage each: ``synthesis`` (procedural SEM micrographs with exact
masks), ``data`` (dataset folders, labelme import, augmentation, AD/SD mixing),
``models`` (architectures by name), ``training`` (losses, metrics, the training
loop, evaluation), ``experiments`` (the study as a YAML file), ``inference``
(sliding-window prediction, ring measurements, structure-level evaluation).
"""

__version__ = "0.1.0"
