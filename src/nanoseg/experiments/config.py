"""The experiment file: the whole study as one YAML document, validated before anything runs.

``n_train`` is the number of samples in every training set (files written before it was
renamed say ``train_size``, which is still read, with a deprecation message; ``train_size``
elsewhere is a crop side in px).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..config import first_error, read_yaml_mapping, validate
from ..errors import NanosegError
from ..synthesis.params import PRESETS, SynthParams


class SynthSource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    preset: str = "realistic"
    n: int = Field(..., ge=1, le=1_000_000, description="images to render")
    config: str | None = Field(None, description="generator YAML (e.g. from `nanoseg calibrate`), "
                                                 "relative to the experiment file")
    overrides: dict = Field(default_factory=dict, description="generator parameters")

    @model_validator(mode="after")
    def _check(self):
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r} (choose from {', '.join(PRESETS)})")
        try:
            from_file = {}
            if self.config:
                from ..synthesis.params import load_params

                from_file = load_params(self.preset, config=self.config).model_dump()
            SynthParams(**{**PRESETS[self.preset].model_dump(), **from_file, **self.overrides})
        except ValidationError as exc:
            where, msg = first_error(exc)
            raise ValueError(f"overrides.{where}: {msg}") from None
        return self


class ADSource(BaseModel):
    """Authentic data: an imported dataset folder, or (for a dry run) a synthetic stand-in."""
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    folder: str | None = None
    standin: SynthSource | None = None
    test_fraction: float = Field(0.2, gt=0, lt=1, description="share of micrographs (groups) held out")
    pool_size: int = Field(510, ge=1, le=1_000_000, description="augmented training pool (paper: 510)")
    test_size: int = Field(100, ge=1, le=1_000_000, description="test samples drawn from the held-out groups")
    augment_strength: float = Field(1.0, ge=0, le=2, description="0 (none) .. 2")
    holdout: str = Field("random", pattern="^(random|leave-one-out)$",
                         description="random: test_fraction of the micrographs held out once; leave-one-out: "
                                     "every micrograph (group) is the test set of one fold, tested as it is "
                                     "(not augmented), and the others train")

    @model_validator(mode="after")
    def _one(self):
        if (self.folder is None) == (self.standin is None):
            raise ValueError("give exactly one of folder or standin")
        if self.holdout == "leave-one-out" and self.folder is None:
            raise ValueError("holdout leave-one-out needs an imported folder")
        return self


class SDSource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str | None = None
    synth: list[SynthSource] = Field(default_factory=list, description="styles rendered into the pool")

    @model_validator(mode="after")
    def _one(self):
        if (self.folder is None) == (not self.synth):
            raise ValueError("give exactly one of folder or synth")
        return self


class Mix(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_ad: int = Field(..., ge=0)
    n_sd: int = Field(..., ge=0)
    repeats: int | None = Field(None, ge=1)


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str = "experiment"
    seed: int = Field(0, ge=0, le=2**32 - 1)
    size: int = Field(321, ge=64, le=4096, description="side of the square samples (px)")
    ad: ADSource
    sd: SDSource | None = None
    n_train: int = Field(400, ge=1, description="samples in every training set (n_ad + n_sd of each mix)")
    mixes: list[Mix] = Field(..., min_length=1)
    repeats: int = Field(1, ge=1, description="default repeats per mix (seeds seed, seed+1, ...)")
    models: list[str] = Field(default_factory=lambda: ["unet"], min_length=1)
    training: dict = Field(default_factory=dict, description="TrainConfig fields (iters, batch_size, ...)")
    report_checkpoint: str = Field("best", pattern="^(best|last)$",
                                   description="best: as the paper (best evaluation during training)")
    structures: bool = Field(True, description="also score ring detection (F1, radius error)")

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data):
        if isinstance(data, dict) and "train_size" in data:
            data = dict(data)
            if "n_train" in data:
                raise ValueError("give n_train only (train_size is its old name)")
            warnings.warn("experiment file: `train_size` is now `n_train` (the number of training samples); "
                          "the old key is read for now", FutureWarning, stacklevel=2)
            data["n_train"] = data.pop("train_size")
        return data

    @model_validator(mode="after")
    def _check(self):
        for m in self.mixes:
            if m.n_ad + m.n_sd != self.n_train:
                raise ValueError(f"mix {m.n_ad} AD + {m.n_sd} SD does not add up to n_train {self.n_train}")
            if m.n_sd and self.sd is None:
                raise ValueError(f"mix {m.n_ad}/{m.n_sd} needs SD but no sd source is given")
            if m.n_ad > self.ad.pool_size:
                raise ValueError(f"mix asks for {m.n_ad} AD but ad.pool_size is {self.ad.pool_size}")
        if self.sd is not None and self.sd.synth:
            n_pool = sum(s.n for s in self.sd.synth)
            worst = max(m.n_sd for m in self.mixes)
            if worst > n_pool:
                raise ValueError(f"a mix asks for {worst} SD but the synthetic pool holds {n_pool}")
        from ..models import parse_model_name
        from ..training.config import TrainConfig

        bad = set(self.training) - set(TrainConfig.model_fields) | ({"train", "val"} & set(self.training))
        if bad:
            raise ValueError(f"training: unknown or reserved setting(s) {sorted(bad)}")
        try:
            TrainConfig(train="x", **self.training)
        except ValidationError as exc:
            where, msg = first_error(exc)
            raise ValueError(f"training.{where}: {msg}") from None
        for name in self.models:
            try:
                parse_model_name(name)
            except NanosegError as exc:
                raise ValueError(f"models: {str(exc).removeprefix('--model: ')}") from None
        return self


def load_experiment(path: str | Path) -> ExperimentConfig:
    path = Path(path)
    data = read_yaml_mapping(path, "experiment file")
    base = path.parent
    # relative folders are relative to the experiment file
    for key in ("ad", "sd"):
        sec = data.get(key)
        if isinstance(sec, dict) and sec.get("folder") and not Path(sec["folder"]).is_absolute():
            sec["folder"] = str((base / sec["folder"]).resolve())
    sd = data.get("sd")
    for synth in (sd.get("synth") or []) if isinstance(sd, dict) else []:
        if isinstance(synth, dict) and synth.get("config") and not Path(synth["config"]).is_absolute():
            synth["config"] = str((base / synth["config"]).resolve())
    cfg = validate(ExperimentConfig, data, source=str(path), what="setting")
    for key in ("ad", "sd"):
        sec = getattr(cfg, key)
        if sec is not None and sec.folder and not Path(sec.folder).is_dir():
            raise NanosegError(f"{path}: {key}.folder: {sec.folder} is not a folder")
    return cfg
