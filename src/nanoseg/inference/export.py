"""``nanoseg export``: the checkpoint as an ONNX model with dynamic height and width."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import NanosegError
from ..io import atomic_path, check_file_target
from ..models import load_model
from .engine import onnx_bytes


def export_onnx(model_path: str | Path, onnx_path: str | Path, *, opset: int = 17, check: bool = True) -> dict:
    """Export a checkpoint to ONNX with dynamic batch, height and width; returns the file and the parity.

    Parameters
    ----------
    model_path : str or Path
        A nanoseg checkpoint (``best.pt``, ``last.pt``).
    onnx_path : str or Path
        ONNX file to write (built under a temporary name, then moved into place).
    opset : int
        ONNX opset version (11-21).
    check : bool
        Compare onnxruntime with PyTorch on random inputs and refuse a largest absolute
        difference above 1e-4 (the previous file, if any, is kept).
    """
    model, spec = load_model(model_path, "cpu")
    onnx_path = Path(onnx_path)
    check_file_target(onnx_path, "--onnx")
    result = {"onnx": str(onnx_path), "arch": spec["arch"]}
    with atomic_path(onnx_path) as tmp:
        tmp.write_bytes(onnx_bytes(model, opset))
        if check:
            result["max_abs_diff"] = onnx_parity(model, tmp)
            if result["max_abs_diff"] > 1e-4:
                raise NanosegError(f"--onnx: exported model differs from PyTorch by {result['max_abs_diff']:.2e}")
    return result


def onnx_parity(model, onnx_file, shapes=((1, 1, 64, 64), (2, 1, 97, 131)), seed: int = 0) -> float:
    """Largest absolute difference between PyTorch and onnxruntime outputs on random inputs."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for shp in shapes:
        x = rng.random(shp, dtype=np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = sess.run(None, {"image": x})[0]
        worst = max(worst, float(np.abs(ref - got).max()))
    return worst
