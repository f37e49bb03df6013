"""Shared homes: the one YAML settings loader and the one temp-then-replace helper for single files."""

import pytest
from pydantic import BaseModel, Field

from nanoseg import io
from nanoseg.config import read_yaml_mapping, validate
from nanoseg.errors import NanosegError


def test_atomic_path_replaces_on_success_and_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "sub" / "table.csv"
    io.write_csv(target, [{"a": 1}])
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text().splitlines() == ["a", "1"]
    with io.atomic_path(target) as tmp:
        assert tmp.suffix == ".csv" and tmp.parent == target.parent
        tmp.write_text("new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.csv"]


def test_atomic_path_clears_the_leftover_of_a_killed_earlier_write(tmp_path):
    target = tmp_path / "model.pt"
    dead_pid = 2**22 + 12345  # above the kernel's pid limit: no live process has it
    leftover = tmp_path / f".model.tmp-{io._HOST}.{dead_pid}-file.pt"
    leftover.write_text("from a kill -9")
    io.atomic_write_text(target, "ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"] and target.read_text() == "ok"


class _Settings(BaseModel):
    iters: int = Field(10, ge=1)


def test_yaml_loader_names_the_file_and_the_setting_in_one_line(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("iters: 5\n")
    assert validate(_Settings, read_yaml_mapping(good, "settings"), source=str(good), what="setting").iters == 5
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_yaml_mapping(empty, "settings") == {}
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(NanosegError, match=r"list\.yaml: settings must be a YAML mapping"):
        read_yaml_mapping(listed, "settings")
    with pytest.raises(NanosegError, match=r"^x\.yaml: setting iters: .*greater than or equal to 1$"):
        validate(_Settings, {"iters": 0}, source="x.yaml", what="setting")
    with pytest.raises(NanosegError, match=r"missing\.yaml: cannot read settings"):
        read_yaml_mapping(tmp_path / "missing.yaml", "settings")
