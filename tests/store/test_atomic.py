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


def test_a_private_file_is_never_readable_by_others_and_a_durable_one_lands_whole(tmp_path):
    import stat

    from store.atomic import PRIVATE, atomic_path

    secret = tmp_path / "state.json"
    seen = []
    with atomic_path(secret, mode=PRIVATE) as tmp:
        seen.append(stat.S_IMODE(tmp.stat().st_mode))  # private while it is written, too
        tmp.write_text("{}")
    assert seen == [0o600] and stat.S_IMODE(secret.stat().st_mode) == 0o600 and secret.read_text() == "{}"
    durable = write_atomically(tmp_path / "head.npz", b"PK", fsync=True)
    assert durable.read_bytes() == b"PK" and stat.S_IMODE(durable.stat().st_mode) == 0o644

    with pytest.raises(ValueError, match="checksum"):
        with atomic_path(tmp_path / "model.tflite") as tmp:  # a download refused after it was written
            tmp.write_bytes(b"wrong")
            raise ValueError("checksum does not match")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.npz", "state.json"]
