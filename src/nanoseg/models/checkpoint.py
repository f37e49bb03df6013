"""Self-describing checkpoints: the file carries everything ``predict`` needs."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import NanosegError
from ..io import atomic_path
from . import build_model

FORMAT = "nanoseg-checkpoint-1"
CLASS_NAMES = ["background", "ring"]


def model_spec(model_name: str, num_classes: int, train_size: int | None, normalize: dict,
               scale_nm_per_px_range: tuple[float, float] | None = None) -> dict:
    """What a checkpoint says about its model; ``scale_nm_per_px_range`` is the range of pixel sizes
    (nm/px) of the training data, or None when the data did not state them."""
    return {"arch": model_name, "num_classes": num_classes, "in_channels": 1,
            "class_names": CLASS_NAMES[:num_classes] if num_classes <= 2 else
            CLASS_NAMES + [f"class{i}" for i in range(2, num_classes)],
            "normalize": normalize, "input": "grayscale, 0-1 (8-bit / 255)", "train_size": train_size,
            "scale_nm_per_px_range": list(scale_nm_per_px_range) if scale_nm_per_px_range else None}


def save(path: str | Path, spec: dict, model: torch.nn.Module, **extra) -> None:
    """Write atomically: a kill during saving leaves the previous file intact."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    obj = {"format": FORMAT, "spec": spec, "model_state": state, **extra}
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load(path: str | Path, map_location="cpu", flag: str = "--model") -> dict:
    """The checkpoint's contents, read with ``weights_only=True``: tensors and plain Python types
    only, so a file carrying a pickled object (which could run code) is refused, never executed."""
    path = Path(path)
    if not path.is_file():
        raise NanosegError(f"{flag}: {path} not found")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - UnpicklingError for payloads, others for garbage
        raise NanosegError(f"{flag}: {path} is not a nanoseg checkpoint ({exc.__class__.__name__}; only "
                           "tensors and plain values are loaded)") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or not isinstance(obj.get("spec"), dict):
        raise NanosegError(f"{flag}: {path} is not a nanoseg checkpoint (format {FORMAT} expected)")
    spec = obj["spec"]
    if not isinstance(spec.get("arch"), str) or not isinstance(spec.get("num_classes"), int) \
            or not 2 <= spec["num_classes"] <= 256:
        raise NanosegError(f"{flag}: {path} has no valid model description (arch, num_classes)")
    state = obj.get("model_state")
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NanosegError(f"{flag}: {path} holds no model weights")
    return obj


def load_state(model: torch.nn.Module, state: dict, path, arch: str, flag: str = "--model") -> None:
    """Load weights into ``model``; a mismatch is bad input (exit 2), not a crash."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise NanosegError(f"{flag}: {path} does not fit architecture {arch!r} "
                           f"({str(exc).strip().splitlines()[0]})") from None


def load_model(path: str | Path, device: str = "cpu"):
    """(model in eval mode, spec) from a checkpoint file; works on any device."""
    obj = load(path)
    spec = obj["spec"]
    model = build_model(spec["arch"], spec["num_classes"], spec.get("in_channels", 1))
    load_state(model, obj["model_state"], path, spec["arch"])
    return model.to(device).eval(), spec
