"""One loader for the YAML-backed settings models (generator parameters, training settings, experiments).

``read_yaml_mapping`` reads a file that must hold a mapping; ``validate`` builds a
pydantic model and turns its first validation error into a one-line NanosegError that
names the file (or flag) and the setting. ``first_error`` gives that (location,
message) pair to validators that check nested models themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import NanosegError, brief

M = TypeVar("M", bound=BaseModel)


def read_yaml_mapping(path: str | Path, what: str) -> dict:
    """The mapping in YAML file ``path`` (empty file: ``{}``); ``what`` names the file's role in errors."""
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise NanosegError(f"{path}: cannot read {what} ({brief(exc)})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise NanosegError(f"{path}: {what} must be a YAML mapping of setting: value")
    return loaded


def first_error(exc: ValidationError) -> tuple[str, str]:
    """(dotted location, message) of the first error of a pydantic validation."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return where, err["msg"].removeprefix("Value error, ")


def validate(model: type[M], values: dict, *, source: str, what: str) -> M:
    """``model(**values)``; a validation error becomes ``"<source>: <what> <setting>: <message>"``
    (``"<source>: <message>"`` for a check across settings).

    ``source`` names where the values came from (a file, a flag); empty for none.
    """
    try:
        return model(**values)
    except ValidationError as exc:
        where, msg = first_error(exc)
        prefix = f"{source}: " if source else ""
        raise NanosegError(f"{prefix}{what} {where}: {msg}" if where else f"{prefix}{msg}") from None
