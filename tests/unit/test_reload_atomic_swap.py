"""`atomic_swap` lays out a folder exactly as kubelet's AtomicWriter does."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from agent_lib.timeouts.reload import DATA_DIR, atomic_swap, fingerprint

STAMP = re.compile(r"^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\..+$")


def test_layout_matches_kubelet(tmp_path: Path) -> None:
    new_dir = atomic_swap(tmp_path, {"hourglass.yaml": "a: 1\n", "extra.txt": "x"})
    assert STAMP.match(new_dir.name)
    assert os.readlink(tmp_path / DATA_DIR) == new_dir.name
    for name in ("hourglass.yaml", "extra.txt"):
        assert os.readlink(tmp_path / name) == f"{DATA_DIR}/{name}"
    assert (tmp_path / "hourglass.yaml").read_text() == "a: 1\n"
    assert oct((new_dir / "hourglass.yaml").stat().st_mode & 0o777) == "0o644"
    assert sorted(os.listdir(tmp_path)) == sorted(
        [DATA_DIR, new_dir.name, "extra.txt", "hourglass.yaml"]
    )


def test_swap_replaces_data_and_removes_old_folder_and_keys(tmp_path: Path) -> None:
    first = atomic_swap(tmp_path, {"hourglass.yaml": "a: 1\n", "gone.txt": "x"})
    before = fingerprint(tmp_path / "hourglass.yaml")
    second = atomic_swap(tmp_path, {"hourglass.yaml": "a: 2\n"})
    assert second != first
    assert not first.exists()
    assert not (tmp_path / "gone.txt").is_symlink()
    assert (tmp_path / "hourglass.yaml").read_text() == "a: 2\n"
    assert sorted(os.listdir(tmp_path)) == sorted([DATA_DIR, second.name, "hourglass.yaml"])
    assert fingerprint(tmp_path / "hourglass.yaml") != before


def test_fingerprint_of_missing_or_dangling_file(tmp_path: Path) -> None:
    assert fingerprint(tmp_path / "nothing") is None
    atomic_swap(tmp_path, {"other": "x"})
    os.symlink(f"{DATA_DIR}/hourglass.yaml", tmp_path / "hourglass.yaml")
    assert fingerprint(tmp_path / "hourglass.yaml") is None


@pytest.mark.parametrize("key", ["", "../escape", "a/b", "..data", "..2024_01_01"])
def test_invalid_keys_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="files"):
        atomic_swap(tmp_path, {key: "x"})
    assert not (tmp_path / DATA_DIR).exists()
