"""What runs a segmentation network over one image array, as fast as memory allows.

``Predictor`` holds a model and a back-end (PyTorch, or ONNX Runtime on CPU), and
answers one question: class probabilities (C, H, W) for an 8-bit image (H, W).
The whole image goes through the network in one forward pass whenever its
activations fit a memory budget (the network pads to its stride itself, see
``SegmentationNet``); larger images are cut into the largest tiles that fit,
batched, and blended (``sliding.predict_probs``). ``--tile`` forces tiles of a
given size. File handling, the data bar and the pixel size stay with the caller,
so resampling or other pre-processing can wrap ``Predictor.probs``.

The PyTorch back-end runs an inference copy of the model (``inference_model``): every
convolution followed by batch normalisation folded into one convolution, and on the CPU
channels-last memory. On the 2-core development machine that copy runs a 1280x890 forward
pass of ``unet-small`` in about half the time of the model as trained, with the same
probabilities to 1e-5 (``benchmarks/bench_predict.py``; tested to 1e-4).

Activation memory per input pixel is measured once per model on a small probe:
on CUDA from the allocator's peak, on CPU as the sum of every module's output
(an upper bound: inference frees most of them as it goes).
"""

from __future__ import annotations

import copy
import io as _io
import os

import numpy as np
import torch

from ..errors import NanosegError
from .sliding import predict_probs

BACKENDS = ("torch", "onnx")
PROBE_PX = 128          # side of the probe image for the activation-memory estimate
TILE_MULTIPLE_PX = 32   # budget tiles are multiples of every model's stride
MIN_BUDGET_TILE_PX = 64


def onnx_bytes(model: torch.nn.Module, opset: int = 17) -> bytes:
    """The model as ONNX (dynamic batch, height and width), in memory."""
    buf = _io.BytesIO()
    dummy = torch.rand(1, 1, 96, 128)
    was_training = model.training
    model.eval()
    torch.onnx.export(model, (dummy,), buf, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                    "logits": {0: "batch", 2: "height", 3: "width"}},
                      opset_version=opset, dynamo=False)
    model.train(was_training)
    return buf.getvalue()


class OnnxRunner:
    """ONNX Runtime (CPU) behind the interface of a PyTorch model: N×1×H×W tensor in, logits out."""

    def __init__(self, model: torch.nn.Module, threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = ort.InferenceSession(onnx_bytes(model), opts, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {"image": x})[0])


def fold_batch_norms(module: torch.nn.Module) -> torch.nn.Module:
    """Fold, in place, every ``Conv2d`` directly followed by a ``BatchNorm2d`` inside an
    ``nn.Sequential`` into one convolution (the norm's running statistics; eval mode only) and
    put an ``nn.Identity`` where the norm was. Returns ``module``."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for seq in [m for m in module.modules() if isinstance(m, torch.nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if (type(conv) is torch.nn.Conv2d and type(bn) is torch.nn.BatchNorm2d and bn.track_running_stats
                    and bn.running_mean is not None and conv.out_channels == bn.num_features):
                seq._modules[a] = fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = torch.nn.Identity()
    return module


def inference_model(model: torch.nn.Module, device: torch.device | str = "cpu") -> torch.nn.Module:
    """A copy of ``model`` for inference: eval mode, batch norms folded into their convolutions
    (``fold_batch_norms``), channels-last memory on the CPU. The caller's model is left as it is."""
    device = torch.device(device)
    fast = fold_batch_norms(copy.deepcopy(model).eval())
    if device.type == "cpu":
        fast = fast.to(memory_format=torch.channels_last)
    return fast


def activation_bytes_per_px(model: torch.nn.Module, device: torch.device | str = "cpu",
                            probe_px: int = PROBE_PX) -> float:
    """Bytes of activations per input pixel of one forward pass (batch 1), measured on a probe."""
    device = torch.device(device)
    x = torch.rand(1, 1, probe_px, probe_px, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        with torch.inference_mode():
            model(x)
        torch.cuda.synchronize(device)
        used = torch.cuda.max_memory_allocated(device) - base
    else:
        seen: set[int] = set()
        total = [0]

        def hook(_module, _inputs, output):
            for t in output if isinstance(output, (tuple, list)) else (output,):
                if isinstance(t, torch.Tensor) and t.data_ptr() not in seen:  # in-place ops count once
                    seen.add(t.data_ptr())
                    total[0] += t.numel() * t.element_size()

        handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
        try:
            with torch.inference_mode():
                model(x)
        finally:
            for h in handles:
                h.remove()
        used = total[0]
    return max(float(used), 1.0) / (probe_px * probe_px)


def default_memory_budget_bytes(device: torch.device | str) -> int:
    """Half of the free memory where the activations live (device memory on CUDA, RAM on CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(0.5 * free)
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if ":" in line}
        return int(0.5 * info.get("MemAvailable", info.get("MemFree", 8 << 30)))
    except OSError:
        pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 0
        return int(0.5 * pages * os.sysconf("SC_PAGE_SIZE")) if pages else 4 << 30


def largest_tile_px(shape_hw: tuple[int, int], bytes_per_px: float, budget_bytes: float,
                    batch_size: int = 1) -> int | None:
    """``None`` when the whole image fits the budget; else the side of the largest square tile such
    that ``batch_size`` tiles fit (a multiple of 32 px, at least 64 px)."""
    h, w = shape_hw
    if h * w * bytes_per_px <= budget_bytes:
        return None
    side = int(np.sqrt(budget_bytes / (bytes_per_px * max(1, batch_size))))
    return max(MIN_BUDGET_TILE_PX, side // TILE_MULTIPLE_PX * TILE_MULTIPLE_PX)


class Predictor:
    """Class probabilities of whole images, from a model and a back-end.

    Parameters
    ----------
    model : torch.nn.Module
        A ``SegmentationNet`` (normalises and pads internally), on ``device``, in eval mode. The
        PyTorch back-end runs ``inference_model(model)``, a folded copy; ``model`` is not changed.
    device : str or torch.device
        Where the PyTorch back-end runs.
    backend : {"torch", "onnx"}
        ``onnx`` runs the exported model in ONNX Runtime on the CPU.
    tile_px : int, optional
        Force sliding-window tiles of this side (px); by default the whole image, or the largest
        tiles that fit ``memory_budget_mb``.
    overlap_px : int, optional
        Tile overlap (px); default a quarter of the tile.
    batch_size : int
        Tiles per forward pass.
    memory_budget_mb : float, optional
        Activation memory allowed (MiB); default half of the free memory of the device.
    """

    def __init__(self, model: torch.nn.Module, *, device: torch.device | str = "cpu", backend: str = "torch",
                 tile_px: int | None = None, overlap_px: int | None = None, batch_size: int = 4,
                 memory_budget_mb: float | None = None):
        if backend not in BACKENDS:
            raise NanosegError(f"--backend: {backend!r} is not one of {', '.join(BACKENDS)}")
        self.device = torch.device(device)
        if backend == "onnx" and self.device.type != "cpu":
            raise NanosegError(f"--backend: onnx runs on the CPU (got --device {self.device})")
        if tile_px is not None and tile_px < 16:
            raise NanosegError(f"--tile: {tile_px} px is too small (at least 16)")
        if overlap_px is not None and tile_px is not None and not 0 <= overlap_px < tile_px:
            raise NanosegError(f"--overlap: {overlap_px} must be at least 0 and smaller than the tile ({tile_px})")
        if memory_budget_mb is not None and memory_budget_mb <= 0:
            raise NanosegError(f"--memory-budget-mb: must be positive (got {memory_budget_mb})")
        if batch_size < 1:
            raise NanosegError(f"--batch-size: must be at least 1 (got {batch_size})")
        self.backend = backend
        self.tile_px, self.overlap_px, self.batch_size = tile_px, overlap_px, batch_size
        self.budget_bytes = (memory_budget_mb * 2**20 if memory_budget_mb is not None
                             else default_memory_budget_bytes(self.device))
        self.run = OnnxRunner(model) if backend == "onnx" else inference_model(model, self.device)
        probe = model if backend == "onnx" else self.run
        self.bytes_per_px = activation_bytes_per_px(probe, self.device) if tile_px is None else None

    def tiling(self, shape_hw: tuple[int, int]) -> tuple[int, int] | None:
        """(tile, overlap) in px for an image of this size, or ``None`` for one whole-image pass."""
        h, w = shape_hw
        tile = self.tile_px
        if tile is None:
            tile = largest_tile_px((h, w), self.bytes_per_px, self.budget_bytes, self.batch_size)
        if tile is None or (h <= tile and w <= tile):
            return None
        overlap = tile // 4 if self.overlap_px is None else self.overlap_px
        if overlap >= tile:
            raise NanosegError(f"--overlap: {overlap} must be smaller than the tile ({tile})")
        return tile, overlap

    def probs(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities (C, H, W), float32, of an 8-bit grayscale image (H, W)."""
        tiling = self.tiling(image.shape)
        dev = self.device if self.backend == "torch" else "cpu"
        if tiling is None:
            return predict_probs(self.run, image, max(image.shape), 0, 1, dev)
        tile, overlap = tiling
        return predict_probs(self.run, image, tile, overlap, self.batch_size, dev)
