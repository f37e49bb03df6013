"""Training settings (what ``RUN/config.yaml`` records)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..config import read_yaml_mapping, validate


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)

    train: str = Field(..., description="training dataset folder")
    val: str | None = Field(None, description="validation dataset folder (evaluated on whole images)")
    model: str = "unet"
    encoder_weights: str | None = None
    num_classes: int = Field(2, ge=2, le=256)
    loss: str = Field("dice", pattern="^(dice|ce|dice\\+ce)$")
    iters: int = Field(1000, ge=1)
    batch_size: int = Field(16, ge=1, le=4096)
    optimizer: str = Field("sgd", pattern="^(sgd|adamw)$", description="sgd as the paper; adamw converges faster")
    lr: float = Field(0.01, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(4e-5, ge=0)
    power: float = Field(0.9, ge=0, description="polynomial lr decay power")
    crop: int | None = Field(None, ge=16, description="random padding crop for training (px)")
    augment: bool = True
    augment_strength: float = Field(1.0, ge=0, le=2, description="0 (none) .. 2")
    eval_every: int = Field(100, ge=1)
    save_every: int | None = Field(None, ge=1, description="checkpoint interval (default: eval_every)")
    seed: int = Field(0, ge=0, le=2**32 - 1)
    device: str = "auto"
    amp: bool = True
    num_workers: int | None = Field(None, ge=0, description="data loader worker processes "
                                    "(None: from the core count; 0: in the training process)")
    compile: bool = Field(False, description="torch.compile the training forward")
    threads: int | None = Field(None, ge=1)
    scale_nm_per_px_range: tuple[float, float] | None = Field(
        None, description="pixel sizes (nm/px) the model is trained at; default: the range in the "
                          "training manifest's scale_nm_per_px column")


def load_train_config(config: str | Path | None, overrides: dict) -> TrainConfig:
    """Settings from a YAML file (``--config``; a ``RUN/config.yaml`` works too), then the
    ``overrides`` that are not None (the command-line flags win)."""
    values: dict = {}
    if config:
        loaded = read_yaml_mapping(config, "training config")
        loaded.pop("run", None)  # a RUN/config.yaml also records what the run found at start-up
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return validate(TrainConfig, values, source=str(config or ""), what="training setting")
