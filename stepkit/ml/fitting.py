"""What training shares across targets and tasks: the split of the sample, fitting every model in
a pool of threads, and choosing one."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from stepkit.errors import DataError
from stepkit.ml import metrics, models
from stepkit.ml.encoding import Encoder

MIN_ROWS = 20  # per split: fewer cannot calibrate an interval or measure anything


@dataclass
class Encoded:
    """A target's rows, encoded each way its models read them (stepkit/ml/encoding.py)."""

    raw: np.ndarray  # one-hot, NaN where a value is missing
    filled: np.ndarray  # one-hot, imputed: the linear models' input
    codes: np.ndarray | None  # one column per feature; None when no model reads codes
    feature_types: list[str]

    @classmethod
    def of(cls, encoder: Encoder, rows: pa.Table, specs: list[Any]) -> "Encoded":
        raw = encoder.raw(rows)
        codes = encoder.codes(rows) if any(models.encoding(m.kind) == "codes" for m in specs) else None
        return cls(raw, encoder.fill(raw.copy()), codes, encoder.feature_types)

    def input(self, encoding: str) -> np.ndarray:
        """The matrix a model of that encoding reads as `raw`."""
        if encoding == "codes":
            assert self.codes is not None
            return self.codes
        return self.raw

    def take(self, rows: np.ndarray) -> "Encoded":
        return Encoded(self.raw[rows], self.filled[rows], None if self.codes is None else self.codes[rows],
                       self.feature_types)


def split(buckets: np.ndarray, holdout_percent: float) -> dict[str, np.ndarray]:
    held = (buckets % 100) < holdout_percent
    odd = (buckets // 100) % 2 == 1
    return {"train": ~held, "calibration": held & ~odd, "test": held & odd}


def checked_split(pipeline: Any, rows: pa.Table, table: str) -> dict[str, np.ndarray]:
    """The split, refused when a part has too few rows to fit or measure anything (`table` names the table)."""
    parts = split(rows.column("sample_bucket").to_numpy(), pipeline.sample.holdout_percent)
    for name, mask in parts.items():
        if mask.sum() < MIN_ROWS:
            raise DataError(f"{table}: {int(mask.sum()):,} {name} rows of {rows.num_rows:,} "
                            f"(need {MIN_ROWS}; raise sample.percent or holdout_percent)")
    return parts


def feature_types(spec: Any, types: list[str]) -> list[str]:
    """The codes matrix's feature types as a model fits on them: `category_splits: ordinal` makes
    every column a number ("q"), so its trees split a category's code by order. (Only kinds that
    read codes get feature types; the spec and the compiler refuse the setting on the others.)"""
    return ["q"] * len(types) if getattr(spec, "category_splits", None) == "ordinal" else types


def fit_all(specs: list[Any], x: Encoded, y: np.ndarray,
            evaluate: Callable[[Any, models.Fitted], dict[str, Any]], classes: int | None = None
            ) -> dict[str, dict[str, Any]]:
    """Fit every model on the training rows given (`x`, `y`) and evaluate each as soon as its fits are done.

    Every fit (a quantile model has one per quantile) runs in a pool of min(cores, fits) threads,
    with the cores shared out as xgboost threads (at least one each): on two cores, two fits of
    one thread each (most of a quantile fit is serial, its leaf update; xgboost's own threads
    scaled 1.25x there where side-by-side fits scale 2x; more fits than cores at once cost 10%
    more CPU for no wall time at 10M rows); on the 16-vCPU training task, 5 fits x 3 threads.
    Longest first (each kind's rank). Once fewer fits remain than the pool has threads, the ones
    still running take the cores the others left, from their next round (models.sharing): three
    quantile fits and one other on two cores left the last quantile fit alone on one core for 8 s
    of a 10M-row run. A model's bytes (and version) do not depend on the thread count."""
    cores = models.threads()
    count = sum(models.fit_count(m) for m in specs)
    workers = max(1, min(cores, count))
    remaining = [count]
    lock = threading.Lock()

    def share() -> int:
        return max(1, cores // max(1, min(workers, remaining[0])))
    jobs = [(m, models.fits(m, x.input(models.encoding(m.kind)), x.filled, y, max(1, cores // count),
                            classes=classes, feature_types=feature_types(m, x.feature_types))) for m in specs]
    queue = sorted((models.rank(m), i, k) for i, (m, fits) in enumerate(jobs) for k in range(len(fits)))

    def timed(fit: Any) -> tuple[Any, float]:
        started = time.perf_counter()
        try:
            with models.sharing(share):
                return fit(), time.perf_counter() - started
        finally:
            with lock:
                remaining[0] -= 1

    results = {}
    with ThreadPoolExecutor(workers) as pool:
        futures = {(i, k): pool.submit(timed, jobs[i][1][k]) for _, i, k in queue}
        for i, (m, fits) in enumerate(jobs):  # each model evaluated once its fits are done, while others fit
            done = [futures[i, k].result() for k in range(len(fits))]
            started = time.perf_counter()
            result = evaluate(m, models.assemble(m, [part for part, _ in done]))
            result["seconds"] = round(sum(s for _, s in done) + time.perf_counter() - started, 3)
            results[m.name] = result
    return results


def choose(results: dict[str, dict[str, Any]], metric: str) -> str:
    """The model best on calibration rows by `metric` (the reported test figures stay unbiased)."""
    chosen = None
    for name in results:
        if chosen is None or metrics.better(metric, results[name]["calibration"][metric],
                                            results[chosen]["calibration"][metric]):
            chosen = name
    assert chosen is not None
    return chosen


