"""The training data pipeline: a ``torch.utils.data.DataLoader`` over (epoch, index) keys.

Batches are built in worker processes while the model steps (persistent workers,
prefetching, pinned memory for CUDA), yet stay a pure function of the run's seed:
``EpochBatchSampler`` yields the shuffled batches of every epoch as lists of
``(epoch, index)`` keys, and ``SegmentationDataset`` draws a sample's crop and
augmentation from a generator seeded by (seed, epoch, index). Which process builds
a sample, and how many processes there are, therefore never changes a batch, and a
run resumed at (epoch, position) sees exactly the batches of the uninterrupted run.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator

import numpy as np
import torch


def batch_indices(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The shuffled batches of one epoch (drop_last, as PaddleSeg's trainer does when n >= batch)."""
    perm = np.random.default_rng([seed, 1000 + epoch]).permutation(n)
    if n < batch_size:
        perm = np.resize(perm, batch_size)
    nb = len(perm) // batch_size
    return [perm[i * batch_size:(i + 1) * batch_size] for i in range(nb)]


def batches_per_epoch(n: int, batch_size: int) -> int:
    return max(n, batch_size) // batch_size


class EpochBatchSampler:
    """An endless stream of batches of ``(epoch, index)`` keys, starting at ``start=(epoch, position)``.

    Parameters
    ----------
    n : int
        Number of samples in the dataset.
    batch_size : int
        Samples per batch over all processes.
    seed : int
        The run's seed; epoch ``e`` is shuffled by ``batch_indices(n, batch_size, seed, e)``.
    start : tuple of int
        (epoch, batch position) of the first batch; a position past the epoch's end rolls over.
    rank, world : int
        Under data parallelism each process takes ``batch[rank::world]``.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: tuple[int, int] = (0, 0),
                 rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world = rank, world
        self.per_epoch = batches_per_epoch(n, batch_size)
        self.start = int(start[0]) * self.per_epoch + int(start[1])

    def position(self, k: int) -> tuple[int, int]:
        """(epoch, position) after ``k`` batches from the start: what a checkpoint records."""
        return divmod(self.start + k, self.per_epoch)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, pos = divmod(self.start, self.per_epoch)
        while True:
            batches = batch_indices(self.n, self.batch_size, self.seed, epoch)
            for b in batches[pos:]:
                yield [(epoch, int(i)) for i in b[self.rank::self.world]]
            epoch, pos = epoch + 1, 0


def default_num_workers(device: torch.device | str) -> int:
    """Workers for the training loader from the cores this process may use.

    On CUDA the GPU waits for data, so all but one core prepare batches (at most 8). On a CPU
    the model step uses every core and a sample costs 1-3 ms against a step of 0.5 s or more,
    so batches are built in the training process: a worker process only takes cycles from the
    step (``benchmarks/bench_train_loop.py`` on the 2-core development machine, unet-small,
    batch 4, crop 256: 0.87x the bare step's speed with one worker, 1.02x with none).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if torch.device(device).type == "cuda":
        return max(1, min(8, cores - 1))
    return 0


def _worker_init(_worker_id: int) -> None:
    # one thread per worker process: the workers share the cores with the model step
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def train_loader(dataset, sampler: EpochBatchSampler, *, num_workers: int, pin_memory: bool = False,
                 prefetch_factor: int = 2) -> torch.utils.data.DataLoader:
    """A DataLoader yielding ``(x, y)`` batches (float 0-1 images N×1×H×W, int64 masks N×H×W).

    Parameters
    ----------
    dataset : SegmentationDataset
        Indexed by ``(epoch, index)`` keys.
    sampler : EpochBatchSampler
        The batches, in order.
    num_workers : int
        Worker processes (0: batches are built in the calling process).
    pin_memory : bool
        Page-locked host batches, so copies to a CUDA device can be non-blocking.
    prefetch_factor : int
        Batches each worker prepares ahead.
    """
    kw = {}
    if num_workers > 0:
        # Workers start from a fresh server process, not by forking this one: a process that has
        # already used OpenCV's thread pool (synthesis, import, augmentation before training in one
        # experiment run) forks children whose first OpenCV call waits forever on a lock copied
        # from a thread that does not exist in the child.
        methods = multiprocessing.get_all_start_methods()
        kw = dict(persistent_workers=True, prefetch_factor=prefetch_factor, worker_init_fn=_worker_init,
                  multiprocessing_context="forkserver" if "forkserver" in methods else "spawn")
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                                       pin_memory=pin_memory, **kw)
