"""Span location on rapidfuzz against the numpy DP it replaced: same placements, and how fast.

The fuzzy tier of ``fgr_retriever.distill.span_location`` used to run its own semi-global
Levenshtein DP in numpy; it now measures substrings with rapidfuzz. This script loads the
previous module from git history (commit ``cedcd5c``), runs both on the same random cases
(quotes copied from a passage, then case-changed, given 1–3 typos, given too many typos,
invented or duplicated; several edit ratios) and reports how many results differ and the time
each takes. Needs a git checkout with history.

    .venv/bin/python benchmarks/experiments/span_location_rapidfuzz.py

Writes ``benchmarks/results/span_location_rapidfuzz.json``.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fgr_retriever._io import atomic_write_text  # noqa: E402
from fgr_retriever.distill import span_location as new  # noqa: E402

OLD_COMMIT = "cedcd5c"
OUT = ROOT / "benchmarks" / "results" / "span_location_rapidfuzz.json"
LETTERS = "abcdefghijklmnopqrstuvwxyz "


def load_previous():
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_COMMIT}:fgr_retriever/span_location.py"],
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "span_location_numpy_dp.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("span_location_numpy_dp", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def typo(rng: random.Random, text: str, edits: int) -> str:
    chars = list(text)
    for _ in range(edits):
        op = rng.choice("sid")
        pos = rng.randrange(len(chars) + (op == "i"))
        if op == "s" and chars:
            chars[pos] = rng.choice(LETTERS)
        elif op == "i":
            chars.insert(pos, rng.choice(LETTERS))
        elif op == "d" and len(chars) > 1:
            del chars[pos]
    return "".join(chars)


def cases(seed: int, n: int) -> list[tuple[str, list[str]]]:
    """Passages of 1,000–3,000 characters from our own docs, three quotes each."""
    vocab = " ".join((ROOT / name).read_text(encoding="utf-8") for name in
                     ("README.md", "docs/concepts.md", "docs/training.md")).split()
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        start = rng.randrange(len(vocab) - 700)
        passage = " ".join(vocab[start:start + 600])[:rng.randint(1000, 3000)]
        quotes = []
        for _ in range(3):
            a = rng.randrange(len(passage) - 200)
            quote = passage[a:a + rng.randint(30, 180)]
            kind = rng.random()
            if kind < 0.15:
                quote = quote.upper()
            elif kind < 0.75:
                quote = typo(rng, quote, rng.randint(1, 3))
            elif kind < 0.85:
                quote = typo(rng, quote, rng.randint(8, 20))  # beyond the budget: must be dropped
            elif kind < 0.95:
                quote = " ".join(rng.choice(vocab) for _ in range(rng.randint(3, 12)))  # invented
            quotes.append(quote)
            if rng.random() < 0.1:
                quotes.append(quote)  # quoted twice
        out.append((passage, quotes))
    return out


def summary(loc) -> tuple:
    return (loc.spans, loc.tiers, loc.dropped, [(m.start, m.end, m.tier, m.distance) for m in loc.matches])


def run(module, data, ratio: float) -> tuple[list, float]:
    start = time.perf_counter()
    results = [summary(module.locate_spans(p, q, max_edit_ratio=ratio)) for p, q in data]
    return results, time.perf_counter() - start


def main() -> None:
    old = load_previous()
    rows = []
    for ratio, n in ((0.1, 500), (0.2, 300), (0.5, 100)):
        data = cases(seed=int(ratio * 100), n=n)
        run(new, data[:20], ratio)  # warm-up (imports, caches)
        old_res, old_s = run(old, data, ratio)
        new_res, new_s = run(new, data, ratio)
        differ = sum(a != b for a, b in zip(old_res, new_res))
        fuzzy = sum(t == "fuzzy" for r in new_res for t in r[1])
        quotes = sum(len(q) for _, q in data)
        row = {"max_edit_ratio": ratio, "cases": n, "quotes": quotes, "fuzzy_placements": fuzzy,
               "results_that_differ": differ, "numpy_dp_ms_per_quote": round(1000 * old_s / quotes, 3),
               "rapidfuzz_ms_per_quote": round(1000 * new_s / quotes, 3), "speedup": round(old_s / new_s, 2)}
        print(json.dumps(row))
        rows.append(row)
    report = {"what": "span_location fuzzy tier: rapidfuzz vs the previous numpy DP (" + OLD_COMMIT + ")",
              "machine": f"{platform.machine()}, Python {platform.python_version()}", "runs": rows}
    atomic_write_text(OUT, json.dumps(report, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
