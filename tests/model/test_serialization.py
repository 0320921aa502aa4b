"""Saving and loading models in every supported layout."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from fgr_retriever import FGRColBERT, FGRError, InvalidInputError, ModelLoadError
from fgr_retriever.model.serialization import base_weights_dir as base_model_path
from fgr_retriever.model.serialization import detect_format
from fgr_retriever.testing import tiny_model as make_tiny_model

QUERIES = ["how do I wash cashmere", "warranty length"]
DOCS = ["Cashmere should be washed by hand in cold water, never wrung.",
        "Our watches carry a two-year warranty against defects. " * 6]


def assert_same_encodings(a: FGRColBERT, b: FGRColBERT, atol: float = 1e-6) -> None:
    for qa, qb in zip(a.encode_queries(QUERIES), b.encode_queries(QUERIES)):
        assert torch.allclose(qa.vectors, qb.vectors, atol=atol)
        assert torch.equal(qa.relevance_mask, qb.relevance_mask)
    for da, db in zip(a.encode_documents(DOCS), b.encode_documents(DOCS)):
        assert da.window_lengths == db.window_lengths
        assert torch.equal(da.offsets, db.offsets)
        assert torch.allclose(da.vectors, db.vectors, atol=atol)


def doc_input_ids(hf_tokenizer, text: str, marker_id: int | None) -> torch.Tensor:
    """[CLS] (marker) text [SEP], built directly from the Hugging Face tokenizer."""
    ids = hf_tokenizer(text, add_special_tokens=False)["input_ids"]
    head = [hf_tokenizer.cls_token_id] + ([marker_id] if marker_id is not None else [])
    return torch.tensor([head + ids + [hf_tokenizer.sep_token_id]])


def manual_doc_vectors(encoder, weight: torch.Tensor | None, input_ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        hidden = encoder(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).last_hidden_state[0]
        projected = hidden if weight is None else hidden @ weight.T
        return F.normalize(projected, dim=-1)


# --------------------------------------------------------------- our own layout
@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory, tiny_model) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny"
    returned = tiny_model.save_pretrained(path)
    assert Path(returned) == path
    return path


@pytest.fixture(scope="module")
def reloaded(saved_dir) -> FGRColBERT:
    return FGRColBERT.from_pretrained(saved_dir)


class TestOwnFormat:
    def test_layout(self, saved_dir):
        names = {p.relative_to(saved_dir).as_posix() for p in saved_dir.rglob("*") if p.is_file()}
        for required in ("fgr_config.json", "fgr_head.safetensors", "config.json", "model.safetensors",
                         "tokenizer.json", "modules.json", "1_Dense/model.safetensors", "1_Dense/config.json",
                         "config_sentence_transformers.json"):
            assert required in names
        assert not any(n.startswith(".") for n in os.listdir(saved_dir.parent))  # no temp dirs left
        assert detect_format(saved_dir) == "fgr"
        st = json.loads((saved_dir / "config_sentence_transformers.json").read_text())
        assert st["query_prefix"] == "[unused0]" and st["query_length"] == 12 and st["document_length"] == 24

    def test_round_trip_config_and_vectors(self, tiny_model, reloaded, saved_dir):
        assert reloaded.config == tiny_model.config
        assert reloaded.name_or_path == str(saved_dir)
        assert torch.equal(reloaded.projection.weight, tiny_model.projection.weight)
        assert reloaded.relevance.scale.item() == 8.0 and reloaded.relevance.bias.item() == -2.0
        assert_same_encodings(tiny_model, reloaded)

    def test_round_trip_spans_and_scores(self, tiny_model, reloaded):
        for text in DOCS:
            assert reloaded.highlight("wash cashmere", text, threshold=0.4) == \
                tiny_model.highlight("wash cashmere", text, threshold=0.4)
        assert reloaded.score("wash cashmere", DOCS) == pytest.approx(tiny_model.score("wash cashmere", DOCS),
                                                                      abs=1e-5)

    def test_overrides(self, saved_dir):
        model = FGRColBERT.from_pretrained(saved_dir, threshold=0.25, doc_maxlen=30)
        assert model.config.threshold == 0.25 and model.config.doc_maxlen == 30
        assert model.tokenizer.config.doc_maxlen == 30
        with pytest.raises(InvalidInputError):
            FGRColBERT.from_pretrained(saved_dir, not_a_field=1)

    def test_projection_head_round_trip(self, tmp_path):
        model = make_tiny_model(relevance_mode="projection", relevance_dim=6)
        with torch.no_grad():
            model.relevance.proj.weight.normal_()
        model.save_pretrained(tmp_path / "m")
        back = FGRColBERT.from_pretrained(tmp_path / "m")
        assert back.config.relevance_mode == "projection"
        assert torch.equal(back.relevance.proj.weight, model.relevance.proj.weight)
        q, qb = model.encode_queries("cold water")[0], back.encode_queries("cold water")[0]
        d, db = model.encode_documents(DOCS[0])[0], back.encode_documents(DOCS[0])[0]
        assert torch.allclose(model.token_probabilities(q, d.vectors, d.relevance_vectors),
                              back.token_probabilities(qb, db.vectors, db.relevance_vectors), atol=1e-6)

    def test_resave_over_own_directory(self, tmp_path):
        target = tmp_path / "m"
        first = make_tiny_model()
        first.save_pretrained(target)
        second = make_tiny_model(threshold=0.3)
        with torch.no_grad():
            second.projection.weight.mul_(2)
        second.save_pretrained(target)
        back = FGRColBERT.from_pretrained(target)
        assert back.config.threshold == 0.3
        assert torch.equal(back.projection.weight, second.projection.weight)

    def test_save_into_empty_existing_directory(self, tmp_path, tiny_model):
        target = tmp_path / "empty"
        target.mkdir()
        tiny_model.save_pretrained(target)
        assert (target / "fgr_config.json").exists()

    def test_refuses_foreign_non_empty_directory(self, tmp_path, tiny_model):
        target = tmp_path / "mine"
        target.mkdir()
        (target / "notes.txt").write_text("precious")
        (target / "sub").mkdir()
        (target / "sub" / "data.bin").write_bytes(b"\x00\x01")
        with pytest.raises(FGRError, match="refusing"):
            tiny_model.save_pretrained(target)
        assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == ["notes.txt", "sub",
                                                                                      "sub/data.bin"]
        assert (target / "notes.txt").read_text() == "precious"
        assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no temporary directory left behind

    def test_refuses_to_replace_a_file(self, tmp_path, tiny_model):
        target = tmp_path / "file"
        target.write_text("x")
        with pytest.raises(FGRError):
            tiny_model.save_pretrained(target)
        assert target.read_text() == "x"

    @pytest.fixture()
    def copy_of_saved(self, saved_dir, tmp_path) -> Path:
        import shutil

        dst = tmp_path / "copy"
        shutil.copytree(saved_dir, dst)
        return dst

    @pytest.mark.parametrize("content", [b"", b"garbage bytes that are not safetensors", b"\xff" * 64])
    def test_corrupt_head(self, copy_of_saved, content):
        (copy_of_saved / "fgr_head.safetensors").write_bytes(content)
        with pytest.raises(ModelLoadError, match="fgr_head"):
            FGRColBERT.from_pretrained(copy_of_saved)

    def test_truncated_head(self, copy_of_saved):
        path = copy_of_saved / "fgr_head.safetensors"
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 3])
        with pytest.raises(ModelLoadError):
            FGRColBERT.from_pretrained(copy_of_saved)

    def test_missing_head(self, copy_of_saved):
        (copy_of_saved / "fgr_head.safetensors").unlink()
        with pytest.raises(ModelLoadError, match="missing"):
            FGRColBERT.from_pretrained(copy_of_saved)

    def test_head_with_wrong_keys(self, copy_of_saved):
        save_file({"something": torch.zeros(2)}, str(copy_of_saved / "fgr_head.safetensors"))
        with pytest.raises(ModelLoadError, match="relevance head"):
            FGRColBERT.from_pretrained(copy_of_saved)

    def test_corrupt_dense(self, copy_of_saved):
        (copy_of_saved / "1_Dense" / "model.safetensors").write_bytes(b"nope")
        with pytest.raises(ModelLoadError):
            FGRColBERT.from_pretrained(copy_of_saved)

    def test_dense_with_wrong_shape(self, copy_of_saved):
        save_file({"linear.weight": torch.zeros(5, 32)}, str(copy_of_saved / "1_Dense" / "model.safetensors"))
        with pytest.raises(ModelLoadError, match="shape"):
            FGRColBERT.from_pretrained(copy_of_saved)

    def test_corrupt_config_json(self, copy_of_saved):
        (copy_of_saved / "fgr_config.json").write_text("{not json")
        with pytest.raises(ModelLoadError, match="fgr_config.json"):
            FGRColBERT.from_pretrained(copy_of_saved)

    @pytest.mark.parametrize("change", [{"format_version": 99}, {"unexpected_key": 1}])
    def test_config_version_and_unknown_keys(self, copy_of_saved, change):
        cfg = json.loads((copy_of_saved / "fgr_config.json").read_text())
        cfg.update(change)
        (copy_of_saved / "fgr_config.json").write_text(json.dumps(cfg))
        with pytest.raises(ModelLoadError):
            FGRColBERT.from_pretrained(copy_of_saved)

    def test_corrupt_encoder_weights(self, copy_of_saved):
        (copy_of_saved / "model.safetensors").write_bytes(b"\x00" * 10)
        with pytest.raises(ModelLoadError):
            FGRColBERT.from_pretrained(copy_of_saved)

    def test_fingerprint_survives_save_and_load(self, tiny_model, saved_dir, reloaded):
        again = FGRColBERT.from_pretrained(saved_dir)
        assert reloaded.fingerprint() == again.fingerprint() == tiny_model.fingerprint()


# -------------------------------------------------------------------- Stanford
def write_stanford(path: Path, encoder, weight: torch.Tensor, tokenizer, meta: dict | None,
                   weights_format: str = "safetensors") -> Path:
    path.mkdir(parents=True)
    state = {"bert." + k: v.detach().clone().contiguous() for k, v in encoder.state_dict().items()}
    state["linear.weight"] = weight.clone().contiguous()
    if weights_format == "safetensors":
        save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    else:
        torch.save(state, path / "pytorch_model.bin")
    cfg = encoder.config.to_dict()
    cfg["architectures"] = ["HF_ColBERT"]
    (path / "config.json").write_text(json.dumps(cfg))
    tokenizer.save_pretrained(str(path))
    if meta is not None:
        (path / "artifact.metadata").write_text(json.dumps(meta))
    return path


class TestStanford:
    META = {"query_maxlen": 10, "doc_maxlen": 40, "dim": 8, "query_token_id": "[unused0]",
            "doc_token_id": "[unused1]", "attend_to_mask_tokens": False, "similarity": "cosine",
            "mask_punctuation": True, "nbits": 2}

    @pytest.fixture(scope="class")
    @staticmethod
    def weight() -> torch.Tensor:
        g = torch.Generator().manual_seed(7)
        return torch.randn(8, 32, generator=g) * 0.3

    @pytest.fixture(scope="class")
    @staticmethod
    def stanford_dir(tmp_path_factory, tiny_model, weight) -> Path:
        return write_stanford(tmp_path_factory.mktemp("stanford") / "colbert", tiny_model.encoder, weight,
                              tiny_model.tokenizer.hf, TestStanford.META)

    def test_detected_and_configured(self, stanford_dir):
        assert detect_format(stanford_dir) == "stanford"
        model = FGRColBERT.from_pretrained(stanford_dir)
        cfg = model.config
        assert (cfg.dim, cfg.query_maxlen, cfg.doc_maxlen) == (8, 10, 40)
        assert (cfg.query_marker, cfg.doc_marker) == ("[unused0]", "[unused1]")
        assert model.tokenizer.query_marker_id == 1 and model.tokenizer.doc_marker_id == 2
        assert not cfg.attend_to_expansion_tokens

    def test_vectors_equal_manual_projection(self, stanford_dir, tiny_model, weight):
        model = FGRColBERT.from_pretrained(stanford_dir)
        assert torch.equal(model.projection.weight, weight)
        text = "Cashmere should be washed by hand in cold water"  # no punctuation: all tokens kept
        ids = doc_input_ids(tiny_model.tokenizer.hf, text, marker_id=2)
        expected = manual_doc_vectors(tiny_model.encoder, weight, ids)
        got = model.encode_documents(text)[0].vectors
        assert got.shape == expected.shape == (ids.shape[1], 8)
        assert torch.allclose(got, expected, atol=1e-5)

    def test_architecture_only_without_metadata(self, tmp_path, tiny_model, weight):
        path = write_stanford(tmp_path / "c", tiny_model.encoder, weight, tiny_model.tokenizer.hf, None)
        assert detect_format(path) == "stanford"
        model = FGRColBERT.from_pretrained(path)
        assert (model.config.dim, model.config.query_maxlen, model.config.doc_maxlen) == (8, 32, 180)
        assert model.config.query_marker == "[unused0]"

    def test_pytorch_bin_weights(self, tmp_path, tiny_model, weight):
        path = write_stanford(tmp_path / "c", tiny_model.encoder, weight, tiny_model.tokenizer.hf, self.META,
                              weights_format="bin")
        model = FGRColBERT.from_pretrained(path)
        assert torch.equal(model.projection.weight, weight)
        ids = doc_input_ids(tiny_model.tokenizer.hf, "cold water", marker_id=2)
        assert torch.allclose(model.encode_documents("cold water")[0].vectors,
                              manual_doc_vectors(tiny_model.encoder, weight, ids), atol=1e-5)

    def test_missing_linear(self, tmp_path, tiny_model, weight, stanford_dir):
        import shutil

        from safetensors.torch import load_file

        path = tmp_path / "c"
        shutil.copytree(stanford_dir, path)
        state = load_file(str(path / "model.safetensors"))
        del state["linear.weight"]
        save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
        with pytest.raises(ModelLoadError, match="linear.weight"):
            FGRColBERT.from_pretrained(path)

    def test_overrides_apply(self, stanford_dir):
        model = FGRColBERT.from_pretrained(stanford_dir, threshold=0.2, query_maxlen=16)
        assert model.config.threshold == 0.2 and model.config.query_maxlen == 16 and model.dim == 8


# -------------------------------------------------------- sentence-transformers / PyLate
class TestSentenceTransformers:
    def test_real_sentence_transformers_dir_with_pylate_markers(self, tmp_path, tiny_model):
        pytest.importorskip("sentence_transformers")
        from sentence_transformers import SentenceTransformer
        try:
            from sentence_transformers.sentence_transformer.modules import Dense, Transformer
        except ImportError:  # sentence-transformers < 6
            from sentence_transformers.models import Dense, Transformer
        from transformers import AutoTokenizer, BertModel

        # PyLate adds "[Q] " / "[D] " to the vocabulary and resizes the embeddings
        tokenizer = AutoTokenizer.from_pretrained(str(base_model_path()))
        tokenizer.add_tokens(["[Q] ", "[D] "])
        encoder = BertModel(copy.deepcopy(tiny_model.encoder.config), add_pooling_layer=False)
        encoder.load_state_dict(tiny_model.encoder.state_dict())
        encoder.resize_token_embeddings(len(tokenizer))
        encoder.eval()  # no dropout in the reference computation
        encoder.save_pretrained(str(tmp_path / "bert"))
        tokenizer.save_pretrained(str(tmp_path / "bert"))

        transformer = Transformer(str(tmp_path / "bert"), max_seq_length=64)
        dense = Dense(32, 12, bias=False, activation_function=torch.nn.Identity())
        weight = torch.randn(12, 32, generator=torch.Generator().manual_seed(3)) * 0.3
        with torch.no_grad():
            dense.linear.weight.copy_(weight)
        SentenceTransformer(modules=[transformer, dense], device="cpu").save(str(tmp_path / "st"))
        path = tmp_path / "st"
        assert detect_format(path) == "sentence_transformers"

        model = FGRColBERT.from_pretrained(path)
        assert model.dim == 12
        assert model.config.query_marker == "[Q] " and model.config.doc_marker == "[D] "
        d_id = tokenizer.convert_tokens_to_ids("[D] ")
        assert d_id >= 30522 and model.tokenizer.doc_marker_id == d_id
        assert torch.allclose(model.projection.weight, weight)

        text = "Cashmere should be washed by hand in cold water"
        ids = doc_input_ids(tokenizer, text, marker_id=d_id)
        expected = manual_doc_vectors(encoder, weight, ids)
        assert torch.allclose(model.encode_documents(text)[0].vectors, expected, atol=1e-5)

    @pytest.fixture()
    def hand_written(self, tmp_path, tiny_model):
        """modules.json + 1_Dense written by hand, encoder in a sub-folder."""

        def build(dense_cfg: dict | None = None, st_cfg: dict | None = None, with_dense: bool = True) -> Path:
            root = tmp_path / "hand"
            (root / "0_Transformer").mkdir(parents=True)
            tiny_model.encoder.save_pretrained(str(root / "0_Transformer"))
            tiny_model.tokenizer.hf.save_pretrained(str(root / "0_Transformer"))
            modules = [{"idx": 0, "name": "0", "path": "0_Transformer",
                        "type": "sentence_transformers.models.Transformer"}]
            if with_dense:
                (root / "1_Dense").mkdir()
                weight = torch.randn(10, 32, generator=torch.Generator().manual_seed(11)) * 0.3
                save_file({"linear.weight": weight}, str(root / "1_Dense" / "model.safetensors"))
                cfg = {"in_features": 32, "out_features": 10, "bias": False,
                       "activation_function": "torch.nn.modules.linear.Identity"}
                cfg.update(dense_cfg or {})
                (root / "1_Dense" / "config.json").write_text(json.dumps(cfg))
                modules.append({"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"})
            else:
                modules.append({"idx": 1, "name": "1", "path": "1_Pooling",
                                "type": "sentence_transformers.models.Pooling"})
            (root / "modules.json").write_text(json.dumps(modules))
            if st_cfg is not None:
                (root / "config_sentence_transformers.json").write_text(json.dumps(st_cfg))
            return root

        return build

    def test_hand_written_pylate_dir(self, hand_written, tiny_model):
        path = hand_written(st_cfg={"query_prefix": "[unused0]", "document_prefix": "[unused1]",
                                    "query_length": 10, "document_length": 40,
                                    "attend_to_expansion_tokens": True, "skiplist_words": []})
        model = FGRColBERT.from_pretrained(path)
        cfg = model.config
        assert (cfg.dim, cfg.query_maxlen, cfg.doc_maxlen) == (10, 10, 40)
        assert (cfg.query_marker, cfg.doc_marker) == ("[unused0]", "[unused1]")
        assert cfg.attend_to_expansion_tokens is True
        assert cfg.mask_punctuation is False  # an empty skiplist switches punctuation masking off
        weight = torch.randn(10, 32, generator=torch.Generator().manual_seed(11)) * 0.3
        assert torch.allclose(model.projection.weight, weight)
        ids = doc_input_ids(tiny_model.tokenizer.hf, "cold, water", marker_id=2)
        expected = manual_doc_vectors(tiny_model.encoder, weight, ids)
        assert torch.allclose(model.encode_documents("cold, water")[0].vectors, expected, atol=1e-5)

    def test_plain_sentence_transformer_without_dense(self, hand_written, tiny_model):
        model = FGRColBERT.from_pretrained(hand_written(with_dense=False))
        assert model.dim == 32
        assert model.config.query_marker is None and model.config.doc_marker is None
        assert torch.equal(model.projection.weight, torch.eye(32))
        ids = doc_input_ids(tiny_model.tokenizer.hf, "cold water", marker_id=None)
        assert torch.allclose(model.encode_documents("cold water")[0].vectors,
                              manual_doc_vectors(tiny_model.encoder, None, ids), atol=1e-5)

    @pytest.mark.parametrize("dense_cfg", [{"bias": True}, {"activation_function": "torch.nn.modules.activation.Tanh"},
                                           {"use_residual": True}])
    def test_unsupported_dense(self, hand_written, dense_cfg):
        with pytest.raises(ModelLoadError):
            FGRColBERT.from_pretrained(hand_written(dense_cfg=dense_cfg, st_cfg={"query_prefix": "[unused0]",
                                                                                 "document_prefix": "[unused1]"}))

    def test_no_transformer_module(self, tmp_path):
        (tmp_path / "modules.json").write_text(json.dumps([{"idx": 0, "path": "1_Dense", "type": "x.Dense"}]))
        with pytest.raises(ModelLoadError, match="Transformer"):
            FGRColBERT.from_pretrained(tmp_path)


# ---------------------------------------------------------------- plain transformers
class TestPlainEncoder:
    def test_plain_hf_dir_uses_identity_projection(self, tmp_path, tiny_model):
        tiny_model.encoder.save_pretrained(str(tmp_path / "enc"))
        tiny_model.tokenizer.hf.save_pretrained(str(tmp_path / "enc"))
        assert detect_format(tmp_path / "enc") == "transformers"
        model = FGRColBERT.from_pretrained(tmp_path / "enc", query_marker=None, doc_marker=None)
        assert model.dim == 32 and torch.equal(model.projection.weight, torch.eye(32))
        ids = doc_input_ids(tiny_model.tokenizer.hf, "cold water", marker_id=None)
        assert torch.allclose(model.encode_documents("cold water")[0].vectors,
                              manual_doc_vectors(tiny_model.encoder, None, ids), atol=1e-5)

    def test_plain_hf_dir_with_new_projection_dim(self, tmp_path, tiny_model):
        tiny_model.encoder.save_pretrained(str(tmp_path / "enc"))
        tiny_model.tokenizer.hf.save_pretrained(str(tmp_path / "enc"))
        model = FGRColBERT.from_pretrained(tmp_path / "enc", dim=8)
        assert model.dim == 8 and model.projection.weight.shape == (8, 32)
        assert model.encode_queries("q")[0].vectors.shape[1] == 8

    def test_broken_encoder_dir(self, tmp_path):
        (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32}))
        with pytest.raises(ModelLoadError):
            FGRColBERT.from_pretrained(tmp_path)

    def test_invalid_config_json(self, tmp_path):
        (tmp_path / "config.json").write_text("{{{")
        with pytest.raises(ModelLoadError):
            FGRColBERT.from_pretrained(tmp_path)


# ----------------------------------------------------------------- missing / hub
class TestNotFound:
    def test_hub_id_offline(self, monkeypatch):
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(ModelLoadError) as info:
            FGRColBERT.from_pretrained("fgr-test-nonexistent-org/no-such-model-4242")
        msg = str(info.value)
        assert "fgr-test-nonexistent-org/no-such-model-4242" in msg
        assert "--local-dir" in msg and "from_pretrained('DIR')" in msg

    @pytest.mark.parametrize("name", ["/definitely/not/here/model", "./missing-model-dir", "~/no-such-fgr-model",
                                      "missing_single_name", "a/b/c"])
    def test_missing_local_path(self, name):
        with pytest.raises(ModelLoadError):
            FGRColBERT.from_pretrained(name)

    def test_missing_path_object(self, tmp_path):
        with pytest.raises(ModelLoadError, match="no model directory"):
            FGRColBERT.from_pretrained(tmp_path / "nothing")

    def test_file_instead_of_directory(self, tmp_path):
        f = tmp_path / "model.safetensors"
        f.write_bytes(b"x")
        with pytest.raises(ModelLoadError, match="is a file"):
            FGRColBERT.from_pretrained(f)

    def test_empty_directory(self, tmp_path):
        with pytest.raises(ModelLoadError, match="holds no model"):
            FGRColBERT.from_pretrained(tmp_path)

    @pytest.mark.parametrize("bad", [123, ["a"], b"bytes"])
    def test_wrong_type(self, bad):
        with pytest.raises(InvalidInputError):
            FGRColBERT.from_pretrained(bad)
