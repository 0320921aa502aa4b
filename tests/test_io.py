"""Atomic writes (fgr_retriever._io): files end up with the permissions the umask allows."""

from __future__ import annotations

import os
import stat

import pytest

from fgr_retriever._io import atomic_directory, atomic_write_text


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750),
                                                        (0o077, 0o600, 0o700)])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    # tempfile creates 0600 files and 0700 folders whatever the umask; a service user of the
    # same group must still be able to read an index written with umask 027
    umask(mask)
    atomic_write_text(tmp_path / "a.json", "{}")
    with atomic_directory(tmp_path / "index", marker="m") as tmp:
        (tmp / "m").write_text("x")
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "index").stat().st_mode) == dir_mode
    assert stat.S_IMODE((tmp_path / "index" / "m").stat().st_mode) == file_mode
    assert (tmp_path / "a.json").read_text() == "{}"


def test_a_save_killed_between_its_renames_is_recovered(tmp_path, tiny_model):
    from fgr_retriever import FGRRetriever

    r = FGRRetriever(model=tiny_model)
    r.add_documents(["Returns are accepted within 30 days."], ids=["returns"])
    path = r.save(tmp_path / "idx")
    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    path.rename(tmp_path / f".idx.old-{dead}-deadbeef")  # the state after the first rename
    (tmp_path / f".idx.tmp-{dead}-x1").mkdir()  # the new copy a killed save left half-written
    (tmp_path / ".idx.tmp-1-x2").mkdir()  # pid 1 runs: a save in progress elsewhere, left alone
    assert FGRRetriever.load(path, model=tiny_model).get(["returns"])[0].id == "returns"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".idx.tmp-1-x2", "idx"]
