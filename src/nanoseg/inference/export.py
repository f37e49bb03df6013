"""``nanoseg export``: the checkpoint as an ONNX model with dynamic height and width."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import NanosegError
from ..io import check_file_target
from ..models import load_model
from .engine import onnx_bytes


def export_onnx(model_path, onnx_path, opset: int = 17, check: bool = True) -> dict:
    model, spec = load_model(model_path, "cpu")
    onnx_path = Path(onnx_path)
    check_file_target(onnx_path, "--onnx")
    tmp = onnx_path.with_name(f".{onnx_path.name}.tmp")
    tmp.write_bytes(onnx_bytes(model, opset))
    result = {"onnx": str(onnx_path), "arch": spec["arch"]}
    if check:
        result["max_abs_diff"] = onnx_parity(model, tmp)
        if result["max_abs_diff"] > 1e-4:
            tmp.unlink(missing_ok=True)
            raise NanosegError(f"--onnx: exported model differs from PyTorch by {result['max_abs_diff']:.2e}")
    tmp.replace(onnx_path)
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
