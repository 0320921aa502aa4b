"""FGRRetriever.open: persistent indexes through the retriever, migration, and crafted manifests."""

from __future__ import annotations

import json
import time

import pytest

from fgr_retriever import (
    FGRRetriever,
    IndexCorruptedError,
    InvalidInputError,
    ModelMismatchError,
    PersistentIndex,
)

TEXTS = {
    "returns": "Returns are accepted within 30 days of delivery with the original receipt.",
    "silk": "Silk scarves should be dry-cleaned only. Never wring them.",
    "ondine": "The Ondine 28 bag weighs 0.9 kg and is made of calfskin.",
}


def test_open_creates_writes_in_place_and_reopens(tmp_path, tiny_model):
    path = tmp_path / "idx"
    r = FGRRetriever.open(path, model=tiny_model)
    assert isinstance(r.index, PersistentIndex)
    r.add_documents(list(TEXTS.values()), ids=list(TEXTS), metadata=[{"kind": k} for k in TEXTS])
    results = r.search("how heavy is the bag", k=3)
    assert results[0].spans or results[0].evidence == ""  # highlighting runs from the stored vectors
    again = FGRRetriever.open(path, model=tiny_model)  # no save() call in between
    assert [x.id for x in again.search("how heavy is the bag", k=3)] == [x.id for x in results]
    assert [x.spans for x in again.search("how heavy is the bag", k=3)] == [x.spans for x in results]
    loaded = FGRRetriever.load(path, model=tiny_model)  # load() opens a persistent index in place
    loaded.delete(["silk"])
    assert "silk" not in FGRRetriever.open(path, model=tiny_model)
    with pytest.raises(InvalidInputError, match="already lives"):
        r.save(path)


def test_portable_copy_and_migration_back(tmp_path, tiny_model):
    r = FGRRetriever.open(tmp_path / "idx", model=tiny_model)
    r.add_documents(list(TEXTS.values()), ids=list(TEXTS))
    copy = r.save(tmp_path / "copy")
    assert json.loads((copy / "index.json").read_text())["version"] == 1
    memory = FGRRetriever.load(copy, model=tiny_model)
    want = [(x.id, round(x.score, 4), x.spans) for x in r.search("returns policy", k=3)]
    assert [(x.id, round(x.score, 4), x.spans) for x in memory.search("returns policy", k=3)] == want
    migrated = FGRRetriever.open(copy, model=tiny_model)  # converted once, in place
    assert json.loads((copy / "index.json").read_text())["version"] == 2 and (copy / "catalog.sqlite").exists()
    assert [(x.id, round(x.score, 4), x.spans) for x in migrated.search("returns policy", k=3)] == want


def test_surrogates_are_refused_at_the_api(tmp_path, tiny_model):
    r = FGRRetriever.open(tmp_path / "idx", model=tiny_model)
    for kwargs in ({"documents": ["bad \udcff text"]}, {"documents": ["ok"], "ids": ["\udcffid"]},
                   {"documents": ["ok"], "metadata": [{"t": "\ud800"}]}):
        with pytest.raises(InvalidInputError, match="surrogate"):
            r.add_documents(**kwargs)
    with pytest.raises(InvalidInputError, match="surrogate"):
        r.search("bad \udcff query")
    r.add_documents(["still works"], ids=["a"])  # nothing half-written blocks later writes
    assert len(r) == 1


def test_hub_model_in_a_manifest_is_not_downloaded(tmp_path, tiny_model, monkeypatch):
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: calls.append(a) or 1 / 0)
    r = FGRRetriever(model=tiny_model)
    r.add_documents(["x"], ids=["x"])
    path = r.save(tmp_path / "copy")
    manifest = json.loads((path / "index.json").read_text())
    manifest["model"]["name_or_path"] = "someone/evil-model"
    (path / "index.json").write_text(json.dumps(manifest))
    for opener in (FGRRetriever.load, FGRRetriever.open):
        with pytest.raises(ModelMismatchError, match="allow_download=True"):
            opener(path)
    assert not calls


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/dev/zero", "vectors.safetensors/../x", "..",
                                  "sub/vectors.safetensors"])
def test_manifest_file_names_cannot_leave_the_index(tmp_path, tiny_model, name):
    r = FGRRetriever(model=tiny_model)
    r.add_documents(["x"], ids=["x"])
    path = r.save(tmp_path / "copy")
    manifest = json.loads((path / "index.json").read_text())
    manifest["files"][name] = "0" * 64
    (path / "index.json").write_text(json.dumps(manifest))
    start = time.monotonic()
    with pytest.raises(IndexCorruptedError):
        FGRRetriever.load(path, model=tiny_model)
    assert time.monotonic() - start < 5  # /dev/zero is refused, not read


def test_an_unknown_persistent_manifest_without_catalogue_is_corrupt(tmp_path, tiny_model):
    path = tmp_path / "idx"
    FGRRetriever.open(path, model=tiny_model).close()
    (path / "catalog.sqlite").unlink()
    with pytest.raises(IndexCorruptedError, match="catalog.sqlite is missing"):
        FGRRetriever.open(path, model=tiny_model)
