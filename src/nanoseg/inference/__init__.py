"""Inference and analysis stage: sliding-window prediction and its tile rule, pixel size, ring
measurements, labelme export and ONNX export. Imports models, never training or the importer."""
