"""nanoseg: segment nanoparticle ring structures in SEM micrographs.

Stages, one subpackage each: ``synthesis`` (procedural SEM micrographs with exact
masks), ``data`` (dataset folders, import, augmentation, AD/SD mixing), ``models``
(architectures by name, devices, checkpoints), ``training`` (losses, the training
loop), ``evaluation`` (PaddleSeg metrics, ring-structure matching, one tile rule),
``inference`` (sliding-window prediction, ring measurements, export),
``experiments`` (the study as a YAML file). Shared by all: ``io`` (files),
``imaging`` (gray conversion, data bar, tiling), ``labelme`` (the annotation format),
``figures``. See docs/ARCHITECTURE.md.
"""

__version__ = "0.1.0"
