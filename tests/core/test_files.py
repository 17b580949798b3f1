"""Reading and writing the user's files: one-line errors, found before any work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from promptopt.core.errors import ConfigError, DataError
from promptopt.core.files import read_utf8, require_writable


def test_read_utf8_names_the_byte_and_its_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": "na\xefve"}\n')
    with pytest.raises(DataError, match=r"data file .* \(byte 0xef on line 2\): fix me"):
        read_utf8(path, "data file", "fix me", DataError)
    path.write_text('{"a": "na\u00efve"}\n', encoding="utf-8")
    assert read_utf8(path, "data file") == '{"a": "na\u00efve"}\n'
    with pytest.raises(ConfigError, match="cannot read data file .*: check the path"):
        read_utf8(tmp_path, "data file")


def test_require_writable_accepts_what_can_be_created(tmp_path: Path) -> None:
    require_writable(tmp_path / "new" / "deeper" / "best.json", "--out")
    require_writable(tmp_path / "runs" / "r1", "--run-dir", directory=True)
    (tmp_path / "best.json").write_text("{}")
    require_writable(tmp_path / "best.json", "--out")
    require_writable(tmp_path, "--run-dir", directory=True)


def test_require_writable_refuses_files_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"cannot be created: .*/f is a file, not a directory"):
        require_writable(tmp_path / "f" / "a" / "best.json", "--out")
    with pytest.raises(ConfigError, match="is a file, not a directory: pass a folder path"):
        require_writable(tmp_path / "f", "--run-dir", directory=True)
    with pytest.raises(ConfigError, match="is a directory: give a file name"):
        require_writable(tmp_path, "--out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only directories")
def test_require_writable_refuses_a_read_only_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "best.json").write_text("{}")
    locked.chmod(0o500)
    (locked / "best.json").chmod(0o400)
    try:
        with pytest.raises(ConfigError, match="no permission to write in .*locked"):
            require_writable(locked / "sub" / "x.json", "--out")
        with pytest.raises(ConfigError, match="is not writable"):
            require_writable(locked / "best.json", "--out")
    finally:
        locked.chmod(0o700)
