"""MaxSim arithmetic: the 16-bit similarity paths agree with float32, block edges included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fgr_retriever.model import scoring


@pytest.mark.parametrize("mode", ["native", "upcast"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_similarity_matches_float32_in_both_modes(monkeypatch, mode, dtype):
    monkeypatch.setenv("FGR_HALF_MATMUL", mode)
    g = torch.Generator().manual_seed(0)
    rows = torch.nn.functional.normalize(torch.randn(scoring._BLOCK + 123, 16, generator=g), dim=-1).to(dtype)
    q = torch.nn.functional.normalize(torch.randn(5, 16, generator=g), dim=-1)
    got = scoring.similarity(q, rows)
    want = q @ rows.float().T
    assert got.shape == (5, rows.shape[0])
    tol = 1e-5 if mode == "upcast" else 2e-2  # upcast multiplies in float32; native rounds to 16 bits
    assert torch.allclose(got.float(), want, atol=tol)
    assert scoring.similarity(q, rows[:0]).shape == (5, 0)


def test_upcast_is_exact_float32_and_float32_rows_are_untouched(monkeypatch):
    monkeypatch.setenv("FGR_HALF_MATMUL", "upcast")
    rows = torch.randn(40, 8)
    q = torch.randn(3, 8)
    assert torch.equal(scoring.similarity(q, rows), q @ rows.T)
    half = rows.to(torch.bfloat16)
    assert torch.equal(scoring.similarity(q, half), q @ half.float().T)


def test_probe_decides_once_and_window_maxsim_uses_it(monkeypatch):
    monkeypatch.delenv("FGR_HALF_MATMUL", raising=False)
    monkeypatch.setattr(scoring, "_native_half", {})
    first = scoring._native_half_is_faster(torch.bfloat16, 16)
    assert scoring._native_half == {torch.bfloat16: first}
    tokens = torch.randn(10, 16).to(torch.bfloat16)
    q = torch.randn(4, 16)
    scores = scoring.window_maxsim(q, tokens, np.array([0, 6]))
    want = (q @ tokens.float().T)
    expected = np.array([want[:, :6].max(1).values.sum(), want[:, 6:].max(1).values.sum()])
    assert np.allclose(scores, expected, atol=0.05)
