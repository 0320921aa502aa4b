"""PersistentIndex: durability, snapshots, approximate search, and refusal of crafted files.

Unit tests use random unit vectors (no model), so they are fast; the exact index
(``approximate=False``) is the reference for the approximate one.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fgr_retriever import (
    Document,
    DocumentNotFoundError,
    DuplicateIdError,
    IndexCorruptedError,
    IndexStoreError,
    InvalidInputError,
    ModelMismatchError,
    PersistentIndex,
)
from fgr_retriever.model.encoder import QueryEncoding, TextEncoding

faiss = pytest.importorskip("faiss", reason="approximate search needs faiss-cpu (the test extra)")
DIM = 16
ROOT = Path(__file__).resolve().parents[2]


def encoding(seed: int, rows: int = 6, windows: tuple[int, ...] | None = None) -> TextEncoding:
    g = torch.Generator().manual_seed(seed)
    vec = torch.nn.functional.normalize(torch.randn(rows, DIM, generator=g), dim=-1)
    offsets = torch.stack([torch.arange(rows) * 4, torch.arange(rows) * 4 + 3], dim=1).to(torch.int32)
    return TextEncoding(vectors=vec, offsets=offsets, window_lengths=windows or (rows,))


def docs(ids, **meta) -> list[Document]:
    return [Document(id=i, text=f"text of {i} " * 3, metadata={"n": int(i.split("-")[-1]), **meta}) for i in ids]


def query(seed: int) -> QueryEncoding:
    g = torch.Generator().manual_seed(10_000 + seed)
    v = torch.nn.functional.normalize(torch.randn(8, DIM, generator=g), dim=-1)
    return QueryEncoding(vectors=v, relevance_mask=torch.ones(8, dtype=torch.bool))


def fill(index: PersistentIndex, n: int, start: int = 0, batch: int = 100) -> None:
    for a in range(start, start + n, batch):
        ids = [f"d-{i}" for i in range(a, min(a + batch, start + n))]
        index.add(docs(ids), [encoding(int(i.split("-")[1])) for i in ids])


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------------- basics
def test_round_trip_upsert_delete_and_reopen(tmp_path):
    path = tmp_path / "idx"
    index = PersistentIndex(path, dim=DIM)
    fill(index, 30)
    assert len(index) == 30 and "d-3" in index and index.ids()[:3] == ["d-0", "d-1", "d-2"]
    index.add(docs(["d-3"], note="new"), [encoding(999)])  # upsert: the new version replaces the old
    index.delete(["d-4", "d-5"])
    with pytest.raises(DocumentNotFoundError):
        index.delete(["d-4", "d-6"])  # one unknown id: nothing is deleted
    assert "d-6" in index and len(index) == 28
    assert index.get(["d-3"])[0].metadata == {"n": 3, "note": "new"}
    assert torch.equal(index.tokens("d-3").vectors.float(), encoding(999).vectors.to(torch.bfloat16).float())
    before = [(h.id, h.score) for h in index.search(query(1), 5)]
    index.close()
    reopened = PersistentIndex(path)
    assert [(h.id, h.score) for h in reopened.search(query(1), 5)] == before
    assert len(reopened) == 28 and "d-4" not in reopened


def test_search_matches_in_memory_exact_scan(tmp_path):
    from fgr_retriever import EmbeddedIndex

    index = PersistentIndex(tmp_path / "idx", dim=DIM, approximate=False)
    memory = EmbeddedIndex(dim=DIM)
    ids = [f"d-{i}" for i in range(60)]
    encs = [encoding(i, rows=3 + i % 7, windows=(2, 1 + i % 7) if i % 5 == 0 else None) for i in range(60)]
    index.add(docs(ids[:30]), encs[:30])
    index.add(docs(ids[30:]), encs[30:])
    memory.add(docs(ids), encs)
    index.delete(["d-7"])
    memory.delete(["d-7"])
    for s in range(5):
        got = [(h.id, round(h.score, 4)) for h in index.search(query(s), 10)]
        want = [(h.id, round(h.score, 4)) for h in memory.search(query(s), 10)]
        assert got == want


def test_int8_storage_halves_the_vectors_and_ranks_like_bf16(tmp_path):
    small = PersistentIndex(tmp_path / "int8", dim=DIM, dtype="int8", approximate=False)
    ref = PersistentIndex(tmp_path / "bf16", dim=DIM, approximate=False)
    fill(small, 120)
    fill(ref, 120)
    stored = small.tokens("d-3").vectors
    original = encoding(3).vectors
    assert stored.dtype == torch.float32 and torch.nn.functional.cosine_similarity(stored, original).min() > 0.999
    seg = lambda p: sum(f.stat().st_size for f in (p / "segments").iterdir())  # noqa: E731
    assert seg(small.path) < 0.75 * seg(ref.path)
    overlap = [len({h.id for h in small.search(query(s), 10)} & {h.id for h in ref.search(query(s), 10)}) / 10
               for s in range(10)]
    assert np.mean(overlap) >= 0.95
    small.delete(["d-0", "d-1"])
    before = [(h.id, h.score) for h in small.search(query(1), 5)]
    small.optimize()  # rewriting int8 segments re-quantises to the same codes
    assert [(h.id, h.score) for h in small.search(query(1), 5)] == before


def test_stored_windows_survive_copies_between_indexes(tmp_path):
    from fgr_retriever import EmbeddedIndex

    index = PersistentIndex(tmp_path / "idx", dim=DIM)
    index.add(docs(["d-1", "d-2"]), [encoding(1, rows=5, windows=(3, 2)), encoding(2)])
    assert index.tokens("d-1").window_lengths == (3, 2)
    index.save(tmp_path)  # the portable copy keeps the windows too
    copy = EmbeddedIndex.load(tmp_path)
    assert copy.tokens("d-1").window_lengths == (3, 2) and copy.tokens("d-2").window_lengths == (6,)
    assert copy.tokens("d-1").encoding().window_lengths == (3, 2)


def test_bad_writes_change_nothing(tmp_path, monkeypatch):
    path = tmp_path / "idx"
    index = PersistentIndex(path, dim=DIM)
    fill(index, 10)
    files, gen = files_under(path), index.generation
    with pytest.raises(ModelMismatchError):
        index.add(docs(["d-20", "d-21"]), [encoding(1), TextEncoding(vectors=torch.ones(2, DIM + 1),
                                                                     offsets=torch.zeros(2, 2), window_lengths=(2,))])
    with pytest.raises(DuplicateIdError):
        index.add(docs(["d-20", "d-20"]), [encoding(1), encoding(2)])
    with pytest.raises(InvalidInputError, match="surrogate"):
        index.add([Document(id="x-1", text="bad \udcff")], [encoding(1)])
    with pytest.raises(InvalidInputError, match="surrogate"):
        index.add([Document(id="x-1", text="ok", metadata={"k": "\ud800"})], [encoding(1)])

    # a failure inside the commit (after the segment file was written) rolls everything back
    def broken_next_generation(conn):
        raise sqlite3.OperationalError("disk I/O error (injected)")

    monkeypatch.setattr(PersistentIndex, "_next_generation", staticmethod(broken_next_generation))
    with pytest.raises(sqlite3.OperationalError):
        index.add(docs(["d-20"]), [encoding(20)])
    with pytest.raises(sqlite3.OperationalError):
        index.delete(["d-1"])
    monkeypatch.undo()
    assert index.generation == gen and len(index) == 10 and "d-1" in index
    assert files_under(path) - {"catalog.sqlite-wal", "catalog.sqlite-shm"} <= files


def test_optimize_reclaims_space_and_keeps_results(tmp_path):
    path = tmp_path / "idx"
    index = PersistentIndex(path, dim=DIM, approximate=False, auto_optimize=False)
    fill(index, 200, batch=20)
    index.delete([f"d-{i}" for i in range(0, 200, 2)])
    before = [[(h.id, h.score) for h in index.search(query(s), 5)] for s in range(3)]
    segs_before = len(list((path / "segments").iterdir()))
    index.optimize()
    assert len(list((path / "segments").iterdir())) == 1 < segs_before
    assert [[(h.id, h.score) for h in index.search(query(s), 5)] for s in range(3)] == before
    assert index.stats()["tokens"] == 100 * 6


def test_small_writes_are_merged_without_rewriting_large_segments(tmp_path, monkeypatch):
    from fgr_retriever.index import persistent

    monkeypatch.setattr(persistent, "_SEGMENT_MAX_ROWS", 800)  # "small" is then < 100 rows
    path = tmp_path / "idx"
    index = PersistentIndex(path, dim=DIM, approximate=False)
    fill(index, 50, batch=50)  # 300 rows: a large segment
    big = {p.name: p.stat().st_mtime_ns for p in (path / "segments").iterdir()}
    counts = []
    for i in range(50, 90):
        fill(index, 1, start=i)
        counts.append(len(list((path / "segments").iterdir())))
    assert max(counts) <= 34 and counts[-1] < 20  # merged once small segments passed 32
    assert big.items() <= {p.name: p.stat().st_mtime_ns for p in (path / "segments").iterdir()}.items()
    exact = [h.id for h in index.search(query(0), 10)]
    assert len(index) == 90 and exact == [h.id for h in PersistentIndex(path).search(query(0), 10)]


# ---------------------------------------------------------------------------- approximate
@pytest.fixture(scope="module")
def ann_index(tmp_path_factory):
    path = tmp_path_factory.mktemp("ann") / "idx"
    index = PersistentIndex(path, dim=DIM, ann_min_tokens=3000, fresh_max_tokens=600,
                            ann={"nlist": 16, "code_bytes": 8, "nprobe": 8, "candidates": 160})
    fill(index, 800, batch=200)
    return index


def test_quantiser_is_trained_above_threshold_and_recall_is_high(ann_index):
    stats = ann_index.stats()
    assert stats["quantiser_parts"] >= 1 and stats["exact_tokens"] < 600
    exact = PersistentIndex(ann_index.path, approximate=False)
    recalls = []
    for s in range(20):
        truth = {h.id for h in exact.search(query(s), 10)}
        recalls.append(len(truth & {h.id for h in ann_index.search(query(s), 10)}) / 10)
    assert np.mean(recalls) >= 0.9


def test_new_documents_are_searchable_before_they_are_quantised(ann_index):
    target = ann_index.tokens("d-5").vectors.float()
    q = QueryEncoding(vectors=target.clone(), relevance_mask=torch.ones(len(target), dtype=torch.bool))
    ann_index.add(docs(["new-1"]), [TextEncoding(vectors=target, offsets=encoding(5).offsets, window_lengths=(6,))])
    assert ann_index.stats()["exact_tokens"] >= 6  # not folded into the quantiser yet
    assert {h.id for h in ann_index.search(q, 2)} == {"d-5", "new-1"}
    ann_index.delete(["new-1"])
    assert "new-1" not in {h.id for h in ann_index.search(q, 5)}


def test_filters_deletes_and_upserts_under_approximate_search(ann_index):
    for s in range(5):
        hits = ann_index.search(query(s), 10, filter={"n": {"$lt": 40}})
        assert hits and all(h.document.metadata["n"] < 40 for h in hits)
    rare = ann_index.search(query(0), 10, filter={"n": 777})  # a filter only one document passes
    assert [h.id for h in rare] == ["d-777"]
    top = ann_index.search(query(3), 1)[0].id
    ann_index.delete([top])
    assert top not in {h.id for h in ann_index.search(query(3), 10)}
    ann_index.add(docs([top]), [encoding(4242)])  # back, as a new version with other vectors
    assert ann_index.get([top])[0].id == top
    exact = PersistentIndex(ann_index.path, approximate=False)
    assert [h.id for h in ann_index.search(query(3), 3)] == [h.id for h in exact.search(query(3), 3)]


def test_mass_deletes_never_starve_the_results(tmp_path):
    index = PersistentIndex(tmp_path / "idx", dim=DIM, ann_min_tokens=3000,
                            ann={"nlist": 16, "code_bytes": 8, "nprobe": 1, "neighbours": 4, "candidates": 8})
    fill(index, 800, batch=200)
    assert index.stats()["quantiser_parts"] >= 1
    index.delete([f"d-{i}" for i in range(20, 800)])
    hits = index.search(query(2), 15)
    assert len(hits) == 15 and {h.id for h in hits} <= {f"d-{i}" for i in range(20)}


def test_an_index_with_a_quantiser_opens_without_faiss(ann_index, monkeypatch):
    from fgr_retriever.errors import MissingDependencyError
    from fgr_retriever.index import ann

    def missing():
        raise MissingDependencyError("no faiss (simulated)")

    monkeypatch.setattr(ann, "require_faiss", missing)
    with pytest.warns(UserWarning, match="searching exactly"):
        exact = PersistentIndex(ann_index.path)
    truth = PersistentIndex(ann_index.path, approximate=False)
    assert [h.id for h in exact.search(query(4), 5)] == [h.id for h in truth.search(query(4), 5)]
    with pytest.raises(MissingDependencyError):
        PersistentIndex(ann_index.path, approximate=True)


def test_results_identical_across_close_and_reopen(ann_index):
    before = [[(h.id, h.score) for h in ann_index.search(query(s), 10)] for s in range(5)]
    again = PersistentIndex(ann_index.path)
    assert [[(h.id, h.score) for h in again.search(query(s), 10)] for s in range(5)] == before
    again.close()


# ---------------------------------------------------------------------------- crash safety
WRITER = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {root!r})
    from fgr_retriever.index import PersistentIndex
    from fgr_retriever.model.encoder import TextEncoding
    from fgr_retriever.types import Document
    index = PersistentIndex(sys.argv[1], approximate=True, ann_min_tokens=2000, fresh_max_tokens=300,
                            ann={{"nlist": 8, "code_bytes": 4}})
    g = torch.Generator().manual_seed(int(sys.argv[2]))
    step = 0
    while True:
        step += 1
        b = f"{{sys.argv[2]}}-{{step}}"
        vec = torch.nn.functional.normalize(torch.randn(5 * 6, 16, generator=g), dim=-1)
        encs = [TextEncoding(vectors=vec[6 * j: 6 * j + 6], offsets=torch.zeros(6, 2, dtype=torch.int32),
                             window_lengths=(6,)) for j in range(5)]
        index.add([Document(id=f"b{{b}}-{{j}}", text=f"batch {{b}}", metadata={{"batch": b}}) for j in range(5)], encs)
        print("committed", b, flush=True)
        if step % 3 == 0:
            old = [i for i in index.ids() if i.endswith("-0")][:1]
            if old:
                index.delete([i[:-1] + str(j) for j in range(5) for i in old])
        if step % 7 == 0:
            index.optimize()
""")


def test_kill_9_during_writes_leaves_old_or_new_state(tmp_path):
    path = tmp_path / "idx"
    PersistentIndex(path, dim=16).close()
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(ROOT)))
    rng = np.random.default_rng(0)
    for round_ in range(12):
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(round_)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(float(rng.uniform(0.8, 2.5)))
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        assert "Traceback" not in err, err
        # only whole lines: the kill can land in the middle of a print
        committed = [line.split()[1] for line in out.split("\n")[:-1] if line.startswith("committed ")]
        index = PersistentIndex(path)  # opening cleans up what the killed writer left behind
        by_batch: dict[str, int] = {}
        for doc in index.get(index.ids()):
            by_batch[doc.metadata["batch"]] = by_batch.get(doc.metadata["batch"], 0) + 1
            assert index.tokens(doc.id).vectors.shape == (6, 16)
        assert all(n == 5 for n in by_batch.values()), by_batch  # every write is all or nothing
        if committed:  # the last write the child reported survives (unless it deleted it later)
            assert committed[-1] in by_batch or committed[-1].endswith(("-3", "-6", "-9"))
        if len(index):
            assert len(index.search(query(round_), 3)) == min(3, len(index))
        # BM25 changed in the same transactions: exactly the live documents, each found by its words
        assert {d for d, _ in index.lexical_search("batch", 10_000)} == set(index.ids())
        conn = sqlite3.connect(str(path / "catalog.sqlite"))
        assert conn.execute("SELECT COUNT(*) FROM lexical").fetchone()[0] == len(index)
        named = {r[0] for r in conn.execute("SELECT file FROM segments UNION SELECT file FROM ann_parts")}
        named |= {json.loads(r[0]) for r in conn.execute("SELECT value FROM meta WHERE key='ann_template'")}
        conn.close()
        on_disk = {p.name for p in (path / "segments").iterdir()} | {p.name for p in (path / "ann").iterdir()}
        assert on_disk == named  # no orphans, nothing missing
        index.close()


# ---------------------------------------------------------------------------- concurrency
def test_readers_and_a_writer_in_threads(tmp_path):
    path = tmp_path / "idx"
    index = PersistentIndex(path, dim=DIM, ann_min_tokens=2000, fresh_max_tokens=300,
                            ann={"nlist": 8, "code_bytes": 4})
    fill(index, 300)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader(seed: int) -> None:
        mine = PersistentIndex(path) if seed % 2 else index  # shared object and separate handles
        n = 0
        while not stop.is_set():
            try:
                for hit in mine.search(query(seed + n), 5):
                    # every hit is internally consistent: its document and vectors are that id's
                    assert hit.document.id == hit.id and hit.document.text.startswith(f"text of {hit.id}")
                    assert hit.tokens.vectors.shape[0] == 6
                n += 1
            except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 3
    i = 300
    while time.monotonic() < deadline:
        fill(index, 20, start=i, batch=20)
        index.delete([f"d-{i - 250 + j}" for j in range(10)])
        i += 20
    index.optimize()
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]


READER = textwrap.dedent("""
    import sys, time, torch
    sys.path.insert(0, {root!r})
    from fgr_retriever.index import PersistentIndex
    from fgr_retriever.model.encoder import QueryEncoding
    index = PersistentIndex(sys.argv[1])
    end, n = time.monotonic() + float(sys.argv[2]), 0
    while time.monotonic() < end:
        q = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
        for hit in index.search(QueryEncoding(vectors=q, relevance_mask=torch.ones(8, dtype=torch.bool)), 5):
            assert hit.document.text.startswith("text of " + hit.id), hit
        n += 1
    print("searches", n)
""")


def test_reader_processes_while_a_writer_commits(tmp_path):
    path = tmp_path / "idx"
    index = PersistentIndex(path, dim=DIM, ann_min_tokens=2000, fresh_max_tokens=300,
                            ann={"nlist": 8, "code_bytes": 4})
    fill(index, 200)
    script = tmp_path / "reader.py"
    script.write_text(READER.format(root=str(ROOT)))
    readers = [subprocess.Popen([sys.executable, str(script), str(path), "4"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(1.5)  # let them start
    i = 200
    while any(r.poll() is None for r in readers):
        fill(index, 20, start=i, batch=20)
        index.delete([f"d-{i - 150 + j}" for j in range(10)])
        if i % 100 == 0:
            index.optimize()
        i += 20
    for r in readers:
        out, err = r.communicate()
        assert r.returncode == 0, err
        assert int(out.split()[1]) > 0


def test_second_writer_waits_for_the_first(tmp_path):
    import fcntl

    path = tmp_path / "idx"
    index = PersistentIndex(path, dim=DIM, lock_timeout=0.3)
    fd = os.open(path / "write.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another process's writer holds the lock
    try:
        with pytest.raises(IndexStoreError, match="another process"):
            fill(index, 1)
    finally:
        os.close(fd)
    fill(index, 1)
    assert len(index) == 1


# ---------------------------------------------------------------------------- crafted files
def test_catalogue_file_names_cannot_leave_the_index(tmp_path):
    path = tmp_path / "idx"
    index = PersistentIndex(path, dim=DIM)
    fill(index, 3)
    index.close()
    for bad in ["../../etc/passwd", "/dev/zero", "..", "seg/../../x"]:
        conn = sqlite3.connect(str(path / "catalog.sqlite"))
        conn.execute("UPDATE segments SET file = ?", (bad,))
        conn.commit()
        conn.close()
        t = time.monotonic()
        with pytest.raises(IndexCorruptedError, match="refusing the file name"):
            PersistentIndex(path)
        assert time.monotonic() - t < 5


def test_truncated_segment_is_reported(tmp_path):
    path = tmp_path / "idx"
    index = PersistentIndex(path, dim=DIM)
    fill(index, 3)
    index.close()
    seg = next((path / "segments").iterdir())
    seg.write_bytes(seg.read_bytes()[:-10])
    with pytest.raises(IndexCorruptedError, match="truncated"):
        PersistentIndex(path)


def test_refuses_to_create_over_unrelated_files(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(IndexStoreError, match="not an empty directory"):
        PersistentIndex(tmp_path, dim=DIM)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    with pytest.raises(ModelMismatchError):
        PersistentIndex(tmp_path / "new", dim=DIM).close() or PersistentIndex(tmp_path / "new", dim=DIM + 1)


def test_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        index = PersistentIndex(tmp_path / "idx", dim=DIM)
        fill(index, 2)
    finally:
        os.umask(old)
    for p in (tmp_path / "idx").rglob("*"):
        mode = p.stat().st_mode & 0o777
        assert mode & 0o044 == 0o044, (p, oct(mode))  # group and others may read
