"""Late-interaction scoring shared by the model (re-ranking) and the embedded index (search)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import torch

__all__ = ["window_maxsim", "segment_max", "similarity"]

_HALF = (torch.bfloat16, torch.float16)
_BLOCK = 16_384  # rows upcast at a time: a float32 copy of 16k x 384 is 25 MB, cache-friendly enough
_native_half: dict[torch.dtype, bool] = {}
_probe_lock = threading.Lock()


def _native_half_is_faster(dtype: torch.dtype, dim: int) -> bool:
    """Whether this CPU multiplies ``dtype`` faster than float32 after an upcast (decided once per
    process by timing both on one block). CPUs with bf16/fp16 instructions (AMX, AVX512-BF16) win
    natively; others (AVX2) emulate 16-bit matmul and are 2-3x slower than upcasting.
    ``FGR_HALF_MATMUL=native`` or ``=upcast`` skips the probe."""
    forced = os.environ.get("FGR_HALF_MATMUL")
    if forced in ("native", "upcast"):
        return forced == "native"
    with _probe_lock:
        if dtype not in _native_half:
            g = torch.Generator().manual_seed(0)
            rows = torch.randn(_BLOCK // 2, dim, generator=g).to(dtype)
            q = torch.randn(32, dim, generator=g).to(dtype)

            def best(fn) -> float:
                times = []
                for _ in range(3):
                    t = time.perf_counter()
                    fn()
                    times.append(time.perf_counter() - t)
                return min(times)

            native = best(lambda: q @ rows.T)
            upcast = best(lambda: q.float() @ rows.float().T)
            _native_half[dtype] = native <= upcast
        return _native_half[dtype]


def similarity(query: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``query [Lq, d] @ rows [T, d].T`` -> ``[Lq, T]``, in the fastest way for ``rows``' type.

    16-bit rows on a CPU without fast 16-bit matmul are upcast to float32 a block at a time
    (never the whole matrix), which is also more precise: the products are not rounded to 16
    bits. Elsewhere the query is cast to the rows' type and multiplied natively.
    """
    if rows.dtype in _HALF and rows.device.type == "cpu" and rows.shape[0] > 0 \
            and not _native_half_is_faster(rows.dtype, rows.shape[1]):
        q = query.float()
        out = torch.empty((query.shape[0], rows.shape[0]), dtype=torch.float32)
        for a in range(0, rows.shape[0], _BLOCK):
            out[:, a: a + _BLOCK] = q @ rows[a: a + _BLOCK].float().T
        return out
    return query.to(rows.dtype) @ rows.T


def segment_max(sim_t: torch.Tensor, starts: np.ndarray) -> np.ndarray:
    """Max over consecutive column segments of ``sim_t [Lq, T]`` -> ``[Lq, W]``.

    Windows are stored back to back, so a segmented reduction (numpy's ``reduceat``) avoids
    padding every window to the longest one. Measured on 1M tokens x 32 query positions it is
    faster than ``torch.segment_reduce`` and ``scatter_reduce`` on this CPU.
    """
    if sim_t.device.type != "cpu":
        lengths = torch.as_tensor(np.diff(np.append(starts, sim_t.shape[1])), device=sim_t.device)
        return torch.segment_reduce(sim_t.float().T, "max", lengths=lengths, axis=0).T.cpu().numpy()
    return np.maximum.reduceat(sim_t.float().numpy(), starts, axis=1)


def window_maxsim(query: torch.Tensor, tokens: torch.Tensor, starts: np.ndarray) -> np.ndarray:
    """ColBERT MaxSim of one query ``[Lq, d]`` against windows stored as ``tokens [T, d]``.

    ``starts`` holds the first row of each window (non-empty windows, ascending). Returns ``[W]``:
    per window, the sum over query positions of the best cosine with any of its tokens.
    """
    sim_t = similarity(query, tokens)  # [Lq, T]
    return segment_max(sim_t, starts).sum(axis=0)
