"""Self-describing checkpoints: the file carries everything ``predict`` needs."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import NanosegError
from ..models import build_model

FORMAT = "nanoseg-checkpoint-1"
CLASS_NAMES = ["background", "ring"]


def model_spec(model_name: str, num_classes: int, train_size: int | None, normalize: dict) -> dict:
    return {"arch": model_name, "num_classes": num_classes, "in_channels": 1,
            "class_names": CLASS_NAMES[:num_classes] if num_classes <= 2 else
            CLASS_NAMES + [f"class{i}" for i in range(2, num_classes)],
            "normalize": normalize, "input": "grayscale, 0-1 (8-bit / 255)", "train_size": train_size}


def save(path: str | Path, spec: dict, model: torch.nn.Module, **extra) -> None:
    """Write atomically: a kill during saving leaves the previous file intact."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    obj = {"format": FORMAT, "spec": spec, "model_state": state, **extra}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise NanosegError(f"--model: {path} not found")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001
        raise NanosegError(f"--model: {path} is not a nanoseg checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or "spec" not in obj:
        raise NanosegError(f"--model: {path} is not a nanoseg checkpoint (format {FORMAT} expected)")
    return obj


def load_model(path: str | Path, device: str = "cpu"):
    """(model in eval mode, spec) from a checkpoint file; works on any device."""
    obj = load(path)
    spec = obj["spec"]
    model = build_model(spec["arch"], spec["num_classes"], spec.get("in_channels", 1))
    try:
        model.load_state_dict(obj["model_state"])
    except RuntimeError as exc:
        raise NanosegError(f"--model: {path} does not fit architecture {spec['arch']!r} "
                           f"({str(exc).splitlines()[0]})") from None
    return model.to(device).eval(), spec
