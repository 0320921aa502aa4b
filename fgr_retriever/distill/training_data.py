"""Training examples for FGR-ColBERT: queries, passages and evidence spans, with fixed splits.

A :class:`TrainingExample` is one query with one passage that is ranked against the others in
its batch (``positive``) and optional hard ``negatives``. Each passage carries its evidence
``spans``; ``spans == ()`` means "nothing here answers" (every token is a negative for the token
loss) and ``spans is None`` means "unknown" (the passage only takes part in the ranking loss).
An example whose passage holds no evidence (a SQuAD v2.0 unanswerable question) has
``rank=False``: it teaches the token head to highlight nothing and is left out of the ranking loss.

:func:`shared_data_examples` builds the standard mix from ``../shared/data`` with splits that
leak nothing between train and dev:

* SQuAD v1.1 / v2.0 and NQ: split by Wikipedia article title (``blake2b(title) % 5 == 0`` is dev),
  so no paragraph is in both splits;
* HotpotQA: the RPT file of origin (``rpt_split``), i.e. split by question;
* SQuAD v2.0 contributes only its unanswerable questions (its answerable ones repeat v1.1's);
* SQuAD v1.1 *train* (``squad-v1.1-train``) is a separate file whose articles are disjoint from the
  dev file's, so all of it is train;
* WikiQA train (real Bing queries) and SelQA: split by question (``blake2b(query) % 10 == 0`` is
  dev); a WikiQA question that no sentence answers is a "highlight nothing" example.

>>> ex = TrainingExample(query="who?", positive=TrainingPassage(text="Ada did.", spans=((0, 3),)))
>>> ex.rank
True
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal, Mapping, Sequence

from .._io import iter_jsonl
from ..errors import InvalidInputError

__all__ = [
    "TrainingExample",
    "TrainingPassage",
    "article_split",
    "question_split",
    "read_training_file",
    "shared_data_examples",
]

Split = Literal["train", "dev"]


@dataclass(frozen=True)
class TrainingPassage:
    text: str
    spans: tuple[tuple[int, int], ...] | None = ()


@dataclass(frozen=True)
class TrainingExample:
    query: str
    positive: TrainingPassage
    negatives: tuple[TrainingPassage, ...] = ()
    rank: bool = True
    source: str = ""
    # optional teacher scores (positive first, then negatives) for KL distillation
    teacher_scores: tuple[float, ...] | None = None
    # passages that must not count as negatives for this query (e.g. its other gold paragraph)
    also_relevant: frozenset[str] = field(default_factory=frozenset)

    @property
    def passages(self) -> tuple[TrainingPassage, ...]:
        return (self.positive, *self.negatives)


def article_split(title: str, *, dev_every: int = 5) -> Split:
    """The fixed split of an article: a stable hash of its title, one in ``dev_every`` is dev."""
    digest = hashlib.blake2b(title.encode("utf-8"), digest_size=8).digest()
    return "dev" if int.from_bytes(digest, "big") % dev_every == 0 else "train"


def question_split(query: str, *, dev_every: int = 10) -> Split:
    """The fixed split of a question of a source without articles: a stable hash of its text."""
    digest = hashlib.blake2b(query.encode("utf-8"), digest_size=8).digest()
    return "dev" if int.from_bytes(digest, "big") % dev_every == 0 else "train"


def _spans(raw: object, passage: str, where: str) -> tuple[tuple[int, int], ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidInputError(f"{where}: spans must be a list of [start, end] pairs")
    out = []
    for item in raw:
        if (not isinstance(item, (list, tuple)) or len(item) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in item)
                or not 0 <= item[0] < item[1] <= len(passage)):
            raise InvalidInputError(f"{where}: bad span {item!r} for a passage of {len(passage)} characters")
        out.append((int(item[0]), int(item[1])))
    return tuple(sorted(out))


def read_training_file(path: str | Path) -> list[TrainingExample]:
    """Examples from a highlight JSONL file (e.g. the output of ``fgr-retriever label``).

    Each record needs ``query``, ``passage`` and ``spans``. A record with evidence is a ranked
    positive; ``spans: []`` makes a token-only "highlight nothing" example. Optional
    ``negatives`` (a list of ``{"passage", "spans"}``; ``spans`` may be omitted = unknown) and
    ``teacher_scores`` (one per passage, positive first) are used when present.
    """
    path = Path(path)
    out: list[TrainingExample] = []
    for number, rec in iter_jsonl(path):
        where = f"{path}:{number}"
        query, passage = rec.get("query"), rec.get("passage")
        if not isinstance(query, str) or not query.strip() or not isinstance(passage, str) or not passage.strip():
            raise InvalidInputError(f"{where}: 'query' and 'passage' must be non-empty strings")
        spans = _spans(rec.get("spans"), passage, where)
        if spans is None:
            raise InvalidInputError(f"{where}: 'spans' is required ([] means the passage holds no evidence)")
        negatives = []
        for k, neg in enumerate(rec.get("negatives") or []):
            if not isinstance(neg, dict) or not isinstance(neg.get("passage"), str) or not neg["passage"].strip():
                raise InvalidInputError(f"{where}: negatives[{k}] must be an object with a non-empty 'passage'")
            negatives.append(TrainingPassage(text=neg["passage"],
                                             spans=_spans(neg.get("spans"), neg["passage"], f"{where} negatives[{k}]")))
        teacher = rec.get("teacher_scores")
        if teacher is not None:
            if (not isinstance(teacher, list) or len(teacher) != 1 + len(negatives)
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in teacher)):
                raise InvalidInputError(f"{where}: teacher_scores must hold one number per passage "
                                        f"({1 + len(negatives)})")
            teacher = tuple(float(v) for v in teacher)
        out.append(TrainingExample(query=query, positive=TrainingPassage(text=passage, spans=spans),
                                   negatives=tuple(negatives), rank=bool(spans), source=str(rec.get("source", path.name)),
                                   teacher_scores=teacher))
    if not out:
        raise InvalidInputError(f"training file {path} holds no examples")
    return out


# ---------------------------------------------------------------- shared data
def _squad(path: Path, split: Split, *, answerable: bool, rng: random.Random, source: str) -> list[TrainingExample]:
    records = [rec for _, rec in iter_jsonl(path) if article_split(rec["title"]) == split]
    paragraphs: dict[str, list[str]] = defaultdict(list)
    for rec in records:
        if rec["passage"] not in paragraphs[rec["title"]]:
            paragraphs[rec["title"]].append(rec["passage"])
    out = []
    for rec in records:
        spans = tuple(tuple(s) for s in rec["spans"])
        if bool(spans) != answerable:
            continue
        if answerable:
            # another paragraph of the same article: a hard negative for ranking. Its tokens are
            # not labelled, because the answer may well appear there too.
            others = [p for p in paragraphs[rec["title"]] if p != rec["passage"]]
            negatives = (TrainingPassage(text=rng.choice(others), spans=None),) if others else ()
            out.append(TrainingExample(query=rec["query"], positive=TrainingPassage(text=rec["passage"], spans=spans),
                                       negatives=negatives, source=source))
        else:
            out.append(TrainingExample(query=rec["query"], positive=TrainingPassage(text=rec["passage"], spans=()),
                                       rank=False, source=source))
    return out


def _squad_train(path: Path, split: Split, *, rng: random.Random) -> list[TrainingExample]:
    if split != "train":
        return []  # the dev side of SQuAD v1.1 is its own file
    records = [rec for _, rec in iter_jsonl(path)]
    paragraphs: dict[str, list[str]] = defaultdict(list)
    for rec in records:
        if not paragraphs[rec["title"]] or paragraphs[rec["title"]][-1] != rec["passage"]:
            paragraphs[rec["title"]].append(rec["passage"])
    out = []
    for rec in records:
        others = [p for p in paragraphs[rec["title"]] if p != rec["passage"]]
        negatives = (TrainingPassage(text=rng.choice(others), spans=None),) if others else ()
        out.append(TrainingExample(query=rec["query"], negatives=negatives, source="squad-v1.1-train",
                                   positive=TrainingPassage(text=rec["passage"], spans=tuple(tuple(s) for s in rec["spans"]))))
    return out


def _sentence_selection(path: Path, split: Split, *, source: str) -> list[TrainingExample]:
    """WikiQA / SelQA: a question over a passage of candidate sentences, the answers labelled."""
    out = []
    for _, rec in iter_jsonl(path):
        if question_split(rec["query"]) != split:
            continue
        spans = tuple(tuple(s) for s in rec["spans"])
        out.append(TrainingExample(query=rec["query"], positive=TrainingPassage(text=rec["passage"], spans=spans),
                                   rank=bool(spans), source=source))
    return out


def _nq(path: Path, split: Split) -> list[TrainingExample]:
    out = []
    for _, rec in iter_jsonl(path):
        if article_split(rec.get("title") or rec["id"]) != split or not rec["spans"]:
            continue
        out.append(TrainingExample(query=rec["query"], source="nq-open-oracle",
                                   positive=TrainingPassage(text=rec["passage"], spans=tuple(tuple(s) for s in rec["spans"]))))
    return out


def _hotpot(path: Path, split: Split, *, rng: random.Random) -> list[TrainingExample]:
    by_question: dict[str, list[dict]] = defaultdict(list)
    for _, rec in iter_jsonl(path):
        if rec["rpt_split"] == ("train" if split == "train" else "dev"):
            by_question[rec["question_id"]].append(rec)
    out = []
    for qid in sorted(by_question):
        recs = by_question[qid]
        gold = [r for r in recs if r["gold_paragraph"]]
        distractors = [r for r in recs if not r["gold_paragraph"]]
        gold_texts = frozenset(r["passage"] for r in gold)
        for g in gold:
            # distractors are confirmed negatives: all-zero token labels are right for them
            negs = (TrainingPassage(text=rng.choice(distractors)["passage"], spans=()),) if distractors else ()
            out.append(TrainingExample(query=g["query"], positive=TrainingPassage(text=g["passage"],
                                                                                  spans=tuple(tuple(s) for s in g["spans"])),
                                       negatives=negs, source="hotpotqa", also_relevant=gold_texts))
    return out


def shared_data_examples(data_dir: str | Path, *, split: Split = "train", seed: int = 0,
                         sources: Sequence[str] = ("squad-v1.1", "squad-v2.0-unanswerable", "nq", "hotpotqa"),
                         repeat: Mapping[str, int] | None = None) -> list[TrainingExample]:
    """The standard training mix from the shared data folder (see the module docstring).

    ``repeat`` oversamples a source, e.g. ``{"hotpotqa": 3}``: HotpotQA's sentence-level evidence
    is the closest in granularity to human highlights but is the smallest source.
    """
    root = Path(data_dir) / "highlight"
    if not root.is_dir():
        raise InvalidInputError(f"{root} does not exist; point --shared-data at the folder holding highlight/")
    rng = random.Random(seed)
    builders = {
        "squad-v1.1": lambda: _squad(root / "squad-v1.1-dev.jsonl.gz", split, answerable=True, rng=rng, source="squad-v1.1"),
        "squad-v2.0-unanswerable": lambda: _squad(root / "squad-v2.0-dev.jsonl.gz", split, answerable=False, rng=rng,
                                                  source="squad-v2.0-unanswerable"),
        "nq": lambda: _nq(root / "nq-open-oracle.jsonl.gz", split),
        "hotpotqa": lambda: _hotpot(root / "hotpotqa-dev.jsonl.gz", split, rng=rng),
        "squad-v1.1-train": lambda: _squad_train(root / "squad-v1.1-train.jsonl.gz", split, rng=rng),
        "wikiqa": lambda: _sentence_selection(root / "wikiqa-train.jsonl.gz", split, source="wikiqa"),
        "selqa": lambda: _sentence_selection(root / "selqa-ass.jsonl.gz", split, source="selqa"),
    }
    unknown = sorted(set(sources) - set(builders))
    if unknown:
        raise InvalidInputError(f"unknown training sources {unknown}; choose from {sorted(builders)}")
    repeat = dict(repeat or {})
    bad = sorted(k for k, v in repeat.items() if k not in sources or not isinstance(v, int) or v < 1)
    if bad:
        raise InvalidInputError(f"repeat must map chosen sources to counts >= 1; bad entries: {bad}")
    out: list[TrainingExample] = []
    for name in sources:
        out.extend(builders[name]() * repeat.get(name, 1))
    return out


def count_by_source(examples: Iterable[TrainingExample]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for ex in examples:
        counts[ex.source] += 1
    return dict(sorted(counts.items()))
