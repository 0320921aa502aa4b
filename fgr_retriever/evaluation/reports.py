"""Report records: what one evaluation run produced, as JSON-ready dataclasses."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .calibration import PRCurve
    from .highlight_metrics import HighlightMetrics


def rounded(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


@dataclass(frozen=True)
class HighlightReport:
    """A system's highlight results on one file for one unit type."""

    system: str
    unit: str
    metrics: HighlightMetrics
    best_threshold: float | None = None
    best: HighlightMetrics | None = None
    curve: PRCurve | None = None
    source: str | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "system": self.system, "unit": self.unit, "source": self.source,
            "metrics": self.metrics.to_dict(),
            "best_threshold": self.best_threshold,
            "best": self.best.to_dict() if self.best else None,
            "curve": self.curve.to_dict() if self.curve else None,
            "seconds": rounded(self.seconds, 3),
        }


@dataclass(frozen=True)
class RetrievalReport:
    """Mean metrics over the evaluated queries, plus per-query values and rankings' sizes."""

    dataset: str
    ranker: str
    mode: str
    depth: int
    relevance_level: int
    n_queries: int
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)
    n_queries_without_candidates: int = 0
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["metrics"] = {k: rounded(v) for k, v in self.metrics.items()}
        d["per_query"] = {q: {k: rounded(v) for k, v in m.items()} for q, m in self.per_query.items()}
        d["seconds"] = rounded(self.seconds, 3)
        return d


@dataclass(frozen=True)
class EfficiencyReport:
    """Indexing throughput and search latency (medians) with and without highlighting."""

    n_documents: int
    n_queries: int
    k: int
    encode_seconds: float
    docs_per_second: float
    search_ms_highlight: float
    search_ms_no_highlight: float
    highlight_overhead_ratio: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (rounded(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}
