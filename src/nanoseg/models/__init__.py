"""Models by name: ``unet``, ``unet-small`` and ``smp:<Arch>:<encoder>``; devices; checkpoints.

``parse_model_name`` is the one grammar of model names and ``build_model`` the one
factory. Every model is wrapped in ``SegmentationNet``, which carries the input
normalisation and pads inputs to the network's stride, so checkpoints and ONNX
files take raw 0-1 grayscale of any size. ``pick_device`` turns ``auto|cpu|cuda[:N]``
into a device; ``checkpoint`` saves and loads self-describing checkpoints
(``load_model`` gives a model ready for inference).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import NanosegError, brief
from .unet import UNet

NORMALIZE = {"mean": 0.5, "std": 0.5}  # PaddleSeg's default Normalize, on 0-1 input


class SegmentationNet(nn.Module):
    """Normalise, pad to a multiple of ``stride`` (edge replicate), run the network, crop back."""

    def __init__(self, net: nn.Module, stride: int, mean: float = NORMALIZE["mean"], std: float = NORMALIZE["std"]):
        super().__init__()
        self.net = net
        self.stride = int(stride)
        self.mean = float(mean)
        self.std = float(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        x = (x - self.mean) / self.std
        if self.stride > 1:
            # always pad (possibly by 0): no Python branch on the size, so ONNX export stays dynamic
            ph = (self.stride - h % self.stride) % self.stride
            pw = (self.stride - w % self.stride) % self.stride
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        y = self.net(x)
        return y[..., :h, :w]


MODEL_NAMES = "unet, unet-small or smp:<Arch>:<encoder>"


def parse_model_name(name: str) -> tuple[str, str | None, str | None]:
    """``(family, arch, encoder)`` of a model name: ``("unet", None, None)``, ``("unet-small", None, None)``
    or ``("smp", Arch, encoder)``. Raises NanosegError (naming ``--model``) for anything else;
    whether smp has that architecture and encoder is checked by ``build_model``."""
    if name in ("unet", "unet-small"):
        return name, None, None
    if name.startswith("smp:"):
        parts = name.split(":")
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise NanosegError(f"--model: {name!r} must read smp:<Arch>:<encoder>, e.g. smp:DeepLabV3:resnet18")
        return "smp", parts[1], parts[2]
    raise NanosegError(f"--model: unknown model {name!r} (use {MODEL_NAMES})")


def build_model(name: str, num_classes: int = 2, in_channels: int = 1,
                encoder_weights: str | Path | None = None) -> SegmentationNet:
    """Build a model by name (see ``parse_model_name``).

    Parameters
    ----------
    name : str
        ``unet``, ``unet-small`` or ``smp:<Arch>:<encoder>``.
    num_classes : int
        Output channels (2: background, ring).
    in_channels : int
        Input channels (1: grayscale).
    encoder_weights : path, optional
        A local state dict copied into the encoder. Nothing is downloaded: encoders
        start from random weights otherwise.
    """
    family, arch, encoder = parse_model_name(name)
    if family == "unet":
        net, stride = UNet(in_channels, num_classes, 64), 16
    elif family == "unet-small":
        net, stride = UNet(in_channels, num_classes, 16), 16
    else:
        import segmentation_models_pytorch as smp

        if not hasattr(smp, arch):
            raise NanosegError(f"--model: segmentation_models_pytorch has no architecture {arch!r}")
        try:
            net = getattr(smp, arch)(encoder_name=encoder, encoder_weights=None, in_channels=in_channels,
                                     classes=num_classes)
        except Exception as exc:  # noqa: BLE001 - smp raises several types for bad names
            raise NanosegError(f"--model: cannot build {name!r} ({brief(exc)})") from None
        stride = 32
    if encoder_weights:
        load_encoder_weights(net, encoder_weights)
    return SegmentationNet(net, stride)


def load_encoder_weights(net: nn.Module, path: str | Path) -> int:
    """Copy matching tensors from a local state dict into the encoder (or the whole net)."""
    path = Path(path)
    if not path.exists():
        raise NanosegError(f"--encoder-weights: {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise NanosegError(f"--encoder-weights: {path} is not a PyTorch state dict ({brief(exc)})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise NanosegError(f"--encoder-weights: {path} is not a state dict (a mapping of names to tensors)")
    target = getattr(net, "encoder", net)
    own = target.state_dict()
    matched = {k: v for k, v in state.items()
               if k in own and isinstance(v, torch.Tensor) and own[k].shape == v.shape}
    if not matched:
        raise NanosegError(f"--encoder-weights: no tensor in {path} matches the encoder")
    own.update(matched)
    target.load_state_dict(own)
    return len(matched)


def pick_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    name = str(name).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and (not index.isdigit() or kind != "cuda")):
        raise NanosegError(f"--device: {name!r} is not auto, cpu, cuda, cuda:N or mps")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise NanosegError(f"--device: {name} requested but no CUDA device is available")
        if index and int(index) >= torch.cuda.device_count():
            raise NanosegError(f"--device: {name} requested but only {torch.cuda.device_count()} CUDA "
                               "device(s) exist")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise NanosegError("--device: mps requested but not available")
    return torch.device(name)


from .checkpoint import load_model  # noqa: E402 - checkpoint builds models with build_model above
