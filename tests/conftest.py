"""Shared fixtures: tiny synthetic datasets and a tiny trained checkpoint (built once per session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")

from nanoseg.synthesis import load_params, synthesize_dataset  # noqa: E402


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sd") / "sd"
    synthesize_dataset(out, n=8, seed=3, params=load_params("realistic"), preset="realistic", size_hw=(96, 96), workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_simple(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("simple") / "simple"
    synthesize_dataset(out, n=6, seed=4, params=load_params("simple"), preset="simple", size_hw=(80, 80), workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_sd) -> Path:
    from nanoseg.training.config import TrainConfig
    from nanoseg.training.train import train

    run = tmp_path_factory.mktemp("run") / "run"
    cfg = TrainConfig(train=str(tiny_sd), val=str(tiny_sd), model="unet-small", iters=2, batch_size=2, crop=64,
                      eval_every=2, seed=0)
    train(cfg, run, progress=False)
    return run / "best.pt"


def run_cli(*args) -> tuple[int, str, str]:
    """Run ``nanoseg`` in-process; returns (exit code, stdout, stderr)."""
    import contextlib
    import io

    from nanoseg.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, out.getvalue(), err.getvalue()
