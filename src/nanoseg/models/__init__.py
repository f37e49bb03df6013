"""Models by name: ``unet``, ``unet-small`` and ``smp:<Arch>:<encoder>``.

``build_model`` is the one factory. Every model is wrapped in ``SegmentationNet``,
which carries the input normalisation and pads inputs to the network's stride,
so checkpoints and ONNX files take raw 0-1 grayscale of any size.
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


def build_model(name: str, num_classes: int = 2, in_channels: int = 1,
                encoder_weights: str | Path | None = None) -> SegmentationNet:
    """Build a model by name. Nothing is downloaded: encoders start from random weights
    unless ``encoder_weights`` is a local state-dict file."""
    if name == "unet":
        net, stride = UNet(in_channels, num_classes, 64), 16
    elif name == "unet-small":
        net, stride = UNet(in_channels, num_classes, 16), 16
    elif name.startswith("smp:"):
        parts = name.split(":")
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise NanosegError(f"--model: {name!r} must read smp:<Arch>:<encoder>, e.g. smp:DeepLabV3:resnet18")
        import segmentation_models_pytorch as smp

        arch, encoder = parts[1], parts[2]
        if not hasattr(smp, arch):
            raise NanosegError(f"--model: segmentation_models_pytorch has no architecture {arch!r}")
        try:
            net = getattr(smp, arch)(encoder_name=encoder, encoder_weights=None, in_channels=in_channels,
                                     classes=num_classes)
        except Exception as exc:  # noqa: BLE001 - smp raises several types for bad names
            raise NanosegError(f"--model: cannot build {name!r} ({brief(exc)})") from None
        stride = 32
    else:
        raise NanosegError(f"--model: unknown model {name!r} (use unet, unet-small or smp:<Arch>:<encoder>)")
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
    target = getattr(net, "encoder", net)
    own = target.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise NanosegError(f"--encoder-weights: no tensor in {path} matches the encoder")
    own.update(matched)
    target.load_state_dict(own)
    return len(matched)
