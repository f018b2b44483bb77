"""One atomic write: a reader sees the old file or the new one, never half; a failed write leaves the old one."""

from __future__ import annotations

import pytest

from store.atomic import write_atomically


def test_text_bytes_and_writers_land_whole_and_a_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    assert write_atomically(path, "first") == path and path.read_text() == "first"
    write_atomically(path, b"\x00bytes")
    assert path.read_bytes() == b"\x00bytes"
    write_atomically(path, lambda fh: fh.write("from a writer"))
    assert path.read_text() == "from a writer" and oct(path.stat().st_mode & 0o777) == "0o644"

    def broken(fh):
        fh.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, broken)
    assert path.read_text() == "from a writer"
    assert [p.name for p in path.parent.iterdir()] == ["out.txt"]  # no temporary file left
