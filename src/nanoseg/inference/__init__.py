"""Inference and analysis stage: sliding-window prediction, pixel size, ring measurements,
structure-level evaluation, labelme export and ONNX export."""
