"""Demo source data for any pipeline spec: an id column and a JSON document column, with a known
target on a share of rows and the mess real data has. It knows its own noise and states the best
MAE any model could reach on it (the Bayes floor).

How the target is made (what makes the floor exact rather than guessed):
    target = clip(round(mean + sum_j c_j(x_j) + e)),   e ~ N(0, noise_sd^2)
Features are independent; each contribution c_j(X_j) has a distribution symmetric around 0.
For a row whose pipeline-visible features are `known`, target given them is then symmetric
around mu = mean + sum_{j known} c_j(x_j), and rounding and clipping are monotone, so
clip(round(mu)) is a median of it: the MAE-optimal prediction. The "oracle" computes it from
the same JSON the pipeline reads (a value missing, null, wrongly typed, out of range or an
unknown category counts as unknown, as the SQL makes it NULL or 'other'); its realised MAE on
the rows the pipeline can use (distinct, parseable, valid target) is the floor.

Features look like their spec: numbers within [min, max] (a typical window of the range; wide
ranges such as incomes skewed towards small values), integers binomial, booleans 50/50,
categories weighted towards the middle of their list. Effects are monotone, some non-linear
in the written value, so trees and linear models differ. Streams in chunks; deterministic for
a seed.
"""
from __future__ import annotations

import math
import platform
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stepkit import demo_classes, storage
from stepkit.demo_numbers import NOISE_SHARE, Floor, NumberPlan, number  # noqa: F401 - NOISE_SHARE: part of this module's interface
from stepkit.errors import StepkitError

CHUNK = 100_000  # rows per chunk: ~250 MB of intermediate strings each at most
# Per feature and row, one of these happens (exclusive); the rest is a clean value.
MESS = {"absent": 0.03, "null": 0.015, "wrong_type": 0.005, "out_of_range": 0.005}
CATEGORY_MESS = {"upper_case": 0.02, "unknown_value": 0.01}  # upper case survives lower(); unknown -> 'other'
TARGET_MESS = {"wrong_type": 0.01, "out_of_range": 0.005, "null": 0.005}
MALFORMED_JSON = 0.003
DUPLICATES = 0.01


@dataclass
class FeaturePlan:
    name: str
    path: list[str]
    type: str
    weight: float
    lo: float = 0.0  # typical window [lo, lo + span] of numeric values
    span: float = 1.0
    skew: float = 0.0  # > 0: exponential skew towards lo (wide ranges)
    square: bool = False  # contribution d*|d| instead of d (non-linear)
    decimals: int = 2
    categories: list[str] | None = None
    probs: np.ndarray | None = None
    min: float | None = None
    max: float | None = None

    # --- value <-> position d in [-1, 1] (symmetric distribution of d around 0)
    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.type == "double":
            u = (rng.random(n) + rng.random(n)) / 2  # triangular on [0, 1]: symmetric
            t = np.expm1(self.skew * u) / math.expm1(self.skew) if self.skew else u
            return np.round(self.lo + self.span * t, self.decimals)
        if self.type == "integer":
            return self.lo + rng.binomial(int(self.span), 0.5, n).astype(np.float64)
        if self.type == "boolean":
            return (rng.random(n) < 0.5).astype(np.float64)
        return rng.choice(len(self.categories), size=n, p=self.probs).astype(np.float64)

    def position(self, x: np.ndarray) -> np.ndarray:
        if self.type == "double":
            t = np.clip((x - self.lo) / self.span, 0, 1)
            u = np.log1p(t * math.expm1(self.skew)) / self.skew if self.skew else t
            return 2 * u - 1
        if self.type == "integer":
            return (x - self.lo) / (self.span / 2) - 1
        if self.type == "boolean":
            return 2 * x - 1
        return 2 * x / (len(self.categories) - 1) - 1

    def shape(self, x: np.ndarray) -> np.ndarray:
        """The feature's effect per unit of weight: its position, squared (sign kept) when non-linear."""
        d = self.position(x)
        return d * np.abs(d) if self.square else d

    def contribution(self, x: np.ndarray) -> np.ndarray:
        return self.weight * self.shape(x)


def _window(f: Any) -> tuple[float, float]:
    lo = f.min if f.min is not None else 0.0
    hi = f.max if f.max is not None else lo + 100.0
    span = hi - lo
    if lo >= 1000:  # calendar years and the like: the middle of the range
        return lo + span * 0.35, span * 0.3
    return lo, span if span <= 10 else span * 0.3


def plan(pipeline: Any, seed: int) -> tuple[list[FeaturePlan], list[Any]]:
    """The generation plan of every feature, and of every target (NumberPlan or demo_classes.ClassPlan)."""
    rng = np.random.default_rng([seed, 0xFEA7])
    order = rng.permutation(len(pipeline.feature_list))
    plans = []
    for rank, f in zip(order, pipeline.feature_list):
        p = FeaturePlan(f.name, _path(f.json_path, f.name), f.type, weight=(1 + rank) ** -0.8,
                        square=bool(rank % 3 == 1), min=f.min, max=f.max)
        if f.type in ("double", "integer"):
            p.lo, p.span = _window(f)
            if f.type == "integer":
                p.lo, p.span = math.ceil(p.lo), max(2, int(p.span))
            else:
                p.skew = 4.0 if p.span >= 1000 else 0.0
                p.decimals = int(min(4, max(0, 3 - math.floor(math.log10(p.span)))))
        elif f.type == "category":
            p.categories = list(f.categories)
            k = len(p.categories)
            w = np.array([math.comb(k - 1, i) + 1.0 for i in range(k)]) if k > 1 else np.ones(1)
            p.probs = w / w.sum()  # symmetric: c_i and c_{k-1-i} are equally likely
            if k == 1:
                p.weight = 0.0
        plans.append(p)
    targets: list[Any] = []
    for i, t in enumerate(pipeline.target_list):
        if t.task == "classification":
            targets.append(demo_classes.plan(t, _path(t.json_path, t.name), plans, i, seed))
            continue
        if i == 0:  # the first target's weights are the features' own (the data of one-target pipelines as before)
            weights = np.array([p.weight for p in plans])
            targets.append(number(t, _path(t.json_path, t.name), plans, weights, np.random.default_rng([seed, 0x5CA1E])))
            for p, w in zip(plans, targets[-1].weights):
                p.weight = float(w)
            continue
        own = np.random.default_rng([seed, 0xFEA7, i]).permutation(len(plans))
        weights = np.array([(1 + r) ** -0.8 if p.weight or p.type != "category" or len(p.categories or []) > 1
                            else 0.0 for r, p in zip(own, plans)])
        targets.append(number(t, _path(t.json_path, t.name), plans, weights, np.random.default_rng([seed, 0x5CA1E, i])))
    return plans, targets


def _path(json_path: str, field: str) -> list[str]:
    parts = json_path[2:].split(".")
    if "[" in json_path:
        raise StepkitError(f"{field}: json_path {json_path}: demo-data writes object paths only (no [index])")
    return parts


# --- JSON text, built column-wise with Arrow string kernels (no Python loop over rows)
def _quote(arr: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise('"', arr, '"', "")


def _num_text(x: np.ndarray, integer: bool) -> pa.Array:
    return pc.cast(pa.array(x.astype(np.int64) if integer else x), pa.string())


def _choose(rng: np.random.Generator, n: int, rates: dict[str, float]) -> np.ndarray:
    """Index of the mess that befalls each row (len(rates) = clean)."""
    edges = np.cumsum(list(rates.values()))
    return np.searchsorted(edges, rng.random(n), side="right")


def _feature_text(p: FeaturePlan, x: np.ndarray, rng: np.random.Generator) -> tuple[pa.Array, np.ndarray]:
    """(JSON value text or null when the field is absent, usable-by-the-pipeline mask)."""
    n = x.size
    kinds = list(MESS)
    mess = _choose(rng, n, MESS)
    if p.type == "category":
        # Text by index into [names, NAMES, unknown]: one take, no Python strings per row.
        k = len(p.categories)
        idx = x.astype(np.int64)
        cat = _choose(rng, n, CATEGORY_MESS)
        idx = np.where(cat == 0, idx + k, np.where(cat == 1, 2 * k, idx))
        words = [*p.categories, *(c.upper() for c in p.categories), "unknown_value"]
        text = _quote(pa.array(words, pa.string())).take(pa.array(idx))
        usable = cat != 1
        wrong = pa.scalar("7")  # a number: the SQL's lower(...) makes it 'other'
    elif p.type == "boolean":
        text = pc.if_else(pa.array(x > 0.5), "true", "false")
        usable = np.ones(n, bool)
        wrong = pa.scalar('"maybe"')
    else:
        text = _num_text(x, p.type == "integer")
        usable = np.ones(n, bool)
        wrong = pa.scalar('"n/a"')
    has_range = p.type in ("double", "integer") and (p.min is not None or p.max is not None)
    if has_range:
        out = p.max + 1 + rng.integers(1, 10, n) * (p.span / 4) if p.max is not None else p.min - 1 - rng.integers(1, 10, n)
        text = pc.if_else(pa.array(mess == kinds.index("out_of_range")), _num_text(np.floor(out), True), text)
    else:
        mess[mess == kinds.index("out_of_range")] = len(kinds)  # nothing to break: stays clean
    text = pc.if_else(pa.array(mess == kinds.index("wrong_type")), wrong, text)
    text = pc.if_else(pa.array(mess == kinds.index("null")), pa.scalar("null"), text)
    text = pc.if_else(pa.array(mess == kinds.index("absent")), pa.scalar(None, pa.string()), text)
    return text, usable & (mess == len(kinds))


def _members(leaves: dict[tuple[str, ...], pa.Array], prefix: tuple[str, ...], n: int, pieces: list[Any]) -> None:
    """Append the pieces of the object at `prefix`: '"key":value' with a leading ',' when an
    earlier member of the object is present, '' when absent; nested objects recursively.
    (A module-level function, not a closure: a recursive closure is a reference cycle that kept
    every chunk's arrays alive until the garbage collector ran.)"""
    seen: list[str] = []
    for path in leaves:
        if path[: len(prefix)] == prefix and len(path) > len(prefix) and path[len(prefix)] not in seen:
            seen.append(path[len(prefix)])
    before = np.zeros(n, dtype=bool)  # some earlier member of this object is present
    for key in seen:
        sub = prefix + (key,)
        if sub in leaves:
            value = leaves[sub]
            lead = pc.if_else(pa.array(before), pa.scalar(f',"{key}":'), pa.scalar(f'"{key}":'))
            pieces.append(pc.fill_null(pc.binary_join_element_wise(lead, value, ""), ""))
            before |= value.is_valid().to_numpy(zero_copy_only=False)
        else:  # a nested object: always written, possibly as {}
            pieces.append(pc.if_else(pa.array(before), pa.scalar(f',"{key}":{{'), pa.scalar(f'"{key}":{{')))
            _members(leaves, sub, n, pieces)
            pieces.append("}")
            before[:] = True


def _objects(leaves: dict[tuple[str, ...], pa.Array]) -> pa.Array:
    """Nested JSON objects from {path: value text (null = absent)}, keys in first-seen order:
    one join over literal pieces and member fragments."""
    n = len(next(iter(leaves.values())))
    pieces: list[Any] = []
    _members(leaves, (), n, pieces)
    # Adjacent literals merge; a join needs at least one array to know the length.
    merged: list[Any] = ["{"]
    for piece in [*pieces, "}"]:
        if isinstance(piece, str) and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    return pc.binary_join_element_wise(*merged, "")


# --- one chunk
@dataclass
class Counts:
    rows: int = 0
    distinct_ids: int = 0
    malformed_json: int = 0
    with_target_field: int = 0
    labelled_rows: int = 0  # distinct, parseable, valid target: what the pipeline can learn from

    def merge(self, other: "Counts") -> None:
        for k in vars(self):
            setattr(self, k, getattr(self, k) + getattr(other, k))


def _target_text(t: Any, y: np.ndarray, labelled: np.ndarray, rng: np.random.Generator) -> tuple[pa.Array, np.ndarray]:
    n = y.size
    integer = t.type == "integer"
    text = _num_text(y, integer)
    mess = _choose(rng, n, TARGET_MESS)
    out_of_range = np.where(rng.random(n) < 0.5, t.max + rng.integers(1, 60, n), t.min - rng.integers(1, 20, n))
    text = pc.if_else(pa.array(mess == 0), pa.scalar('"unknown"'), text)
    text = pc.if_else(pa.array(mess == 1), _num_text(np.floor(out_of_range), True), text)
    text = pc.if_else(pa.array(mess == 2), pa.scalar("null"), text)
    text = pc.if_else(pa.array(labelled), text, pa.scalar(None, pa.string()))
    return text, labelled & (mess == len(TARGET_MESS))


def _truncate(docs: pa.Array, mask: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """Malformed JSON: the document cut short (an unclosed object never parses). Few rows: a loop is fine."""
    idx = np.flatnonzero(mask)
    if not idx.size:
        return docs
    cut = [d[: max(1, len(d) - int(k))] for d, k in zip(docs.take(pa.array(idx)).to_pylist(), rng.integers(1, 12, idx.size))]
    return pc.replace_with_mask(docs, pa.array(mask), pa.array(cut, pa.string()))


def chunk(pipeline: Any, plans: list[FeaturePlan], targets: list[Any], rng: np.random.Generator,
          first_id: int, rows: int, dups: int, labelled_share: float, streams: Any = None
          ) -> tuple[pa.Table, list[Any], Counts]:
    """`rows` rows of which `dups` copy others; ids from `first_id` on. Every target but a numeric
    first one draws from its own stream (`streams(i)`), so a one-target pipeline's data is what it was."""
    n = rows - dups
    leaves: dict[tuple[str, ...], pa.Array] = {}
    counts = Counts()
    first = targets[0] if targets and isinstance(targets[0], NumberPlan) else None
    if first is not None:
        mu = np.full(n, first.mean)  # the oracle's view: known contributions only
        var = np.full(n, first.noise_sd ** 2)
        y = mu + rng.normal(0.0, first.noise_sd, n)
    shapes, usable_all = [], []
    for p in plans:
        x = p.draw(rng, n)
        text, usable = _feature_text(p, x, rng)
        leaves[tuple(p.path)] = text
        shapes.append(p.shape(x))
        usable_all.append(usable)
        if first is not None:
            c = p.contribution(x)
            y += c
            mu += np.where(usable, c, 0.0)
            var += np.where(usable, 0.0, first.contribution_var[p.name])
    labelled = rng.random(n) < labelled_share if targets else np.zeros(n, dtype=bool)
    drawn = []  # per target: (value, oracle, sigma or None, readable rows)
    if first is not None:
        t = first.target
        y = np.clip(np.round(y) if t.type == "integer" else np.round(y, 2), t.min, t.max)
        pred = np.clip(np.round(mu) if t.type == "integer" else mu, t.min, t.max)
        leaves[tuple(first.path)], target_ok = _target_text(t, y, labelled, rng)
        drawn.append((y, pred, np.sqrt(var), target_ok))
    for i, tp in enumerate(targets[1 if first is not None else 0:], start=1 if first is not None else 0):
        own = streams(i)
        mine = labelled if i == 0 else own.random(n) < labelled_share
        if isinstance(tp, NumberPlan):
            t = tp.target
            contributions = [w * sh for w, sh in zip(tp.weights, shapes)]
            y_t = tp.mean + own.normal(0.0, tp.noise_sd, n) + sum(contributions, np.zeros(n))
            mu_t = tp.mean + sum((np.where(u, c, 0.0) for u, c in zip(usable_all, contributions)), np.zeros(n))
            var_t = tp.noise_sd ** 2 + sum((np.where(u, 0.0, tp.contribution_var[p.name])
                                            for u, p in zip(usable_all, plans)), np.zeros(n))
            y_t = np.clip(np.round(y_t) if t.type == "integer" else np.round(y_t, 2), t.min, t.max)
            pred_t = np.clip(np.round(mu_t) if t.type == "integer" else mu_t, t.min, t.max)
            leaves[tuple(tp.path)], ok_t = _target_text(t, y_t, mine, own)
            drawn.append((y_t, pred_t, np.sqrt(var_t), ok_t))
        else:
            codes = demo_classes.draw(tp, shapes, own)
            leaves[tuple(tp.path)], ok_t = demo_classes.text(tp, codes, mine, own)
            drawn.append((codes, None, None, ok_t))
        if i == 0:
            labelled = mine
    docs = _objects(leaves)
    malformed = rng.random(n) < MALFORMED_JSON
    docs = _truncate(docs, malformed, rng)
    floors: list[Any] = []
    for i, (tp, (value, oracle, sigma, ok_t)) in enumerate(zip(targets, drawn)):
        ok = ok_t & ~malformed
        if isinstance(tp, NumberPlan):
            floor = Floor()
            floor.add(value[ok], oracle[ok], sigma[ok])
        else:
            floor = demo_classes.ClassFloor(counts=np.bincount(value[ok], minlength=len(tp.classes)).tolist())
            measured = np.flatnonzero(ok)[:demo_classes.FLOOR_ROWS]
            floor.add(demo_classes.posterior(tp, plans, shapes, usable_all, measured, streams(100 + i)),
                      value[measured])
        floors.append(floor)
        if i == 0:
            counts.labelled_rows += int(ok.sum())
    counts.rows += rows
    counts.distinct_ids += n
    counts.malformed_json += int(malformed.sum())
    counts.with_target_field += int(labelled.sum())
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    if pipeline.source.id_type == "bigint":
        id_col = pa.array(ids)
    else:
        id_col = pc.binary_join_element_wise("p", pc.utf8_lpad(pc.cast(pa.array(ids), pa.string()), 9, "0"), "")
    # Duplicates: exact copies of some rows (the same id and document), spread through the chunk.
    order = rng.permutation(np.concatenate([np.arange(n), rng.integers(0, n, dups)]))
    table = pa.table({pipeline.source.id_column: id_col, pipeline.source.document_column: docs})
    return table.take(pa.array(order)), floors, counts


def write(path: str, pipeline: Any, rows: int, seed: int = 0, labelled_share: float = 0.4,
          progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write `rows` demo rows to the Parquet file `path` and their description to `path + .meta.json`."""
    if rows < 1:
        raise StepkitError(f"--rows {rows}: needs at least one row")
    if not 0 < labelled_share <= 1:
        raise StepkitError(f"--labelled-share {labelled_share}: must be in (0, 1]")
    path = str(path)
    plans, targets = plan(pipeline, seed)
    floors: list[Any] = [Floor() if isinstance(t, NumberPlan) else demo_classes.ClassFloor() for t in targets]
    counts = Counts()
    schema = pa.schema([(pipeline.source.id_column, pa.int64() if pipeline.source.id_type == "bigint" else pa.string()),
                        (pipeline.source.document_column, pa.string())])
    # Chunk i's size, duplicates and first id are fixed up front, so chunks can be made in any
    # order (two threads: Arrow and numpy release the GIL) and the output stays the same.
    sizes = [min(CHUNK, rows - start) for start in range(0, rows, CHUNK)]
    dups = [int(np.random.default_rng([seed, i, 1]).binomial(n, DUPLICATES)) if n > 1 else 0
            for i, n in enumerate(sizes)]
    firsts = np.concatenate([[0], np.cumsum(np.subtract(sizes, dups))[:-1]]).astype(int)

    def make(i: int) -> tuple[pa.Table, list[Any], Counts]:
        return chunk(pipeline, plans, targets, np.random.default_rng([seed, i]), int(firsts[i]), sizes[i],
                     dups[i], labelled_share, lambda k: np.random.default_rng([seed, i, 0x7A, k]))

    done = 0
    with storage.parquet_writer(path, schema, dictionary=False, compression="zstd") as w, ThreadPoolExecutor(2) as pool:
        # Two chunks in flight (one a thread) and the one being written: bounded memory at any size.
        pending = [pool.submit(make, i) for i in range(min(2, len(sizes)))]
        for i in range(len(sizes)):
            table, fs, c = pending.pop(0).result()
            if i + 2 < len(sizes):
                pending.append(pool.submit(make, i + 2))
            w.write_table(table)
            # mimalloc keeps freed pages per thread; hand them back so RSS tracks what is in use.
            pa.default_memory_pool().release_unused()
            for floor, f in zip(floors, fs):
                floor.merge(f)
            counts.merge(c)
            done += table.num_rows
            if progress:
                progress(done, rows)
    described = {tp.name: _described(tp, floor) for tp, floor in zip(targets, floors)}
    first = next(iter(described.values()), {})
    meta = {
        "generator": "stepkit.demo_data/1",
        "pipeline": pipeline.name,
        "seed": seed,
        "rows": counts.rows,
        "distinct_ids": counts.distinct_ids,
        "duplicate_rows": counts.rows - counts.distinct_ids,
        "malformed_json_rows": counts.malformed_json,
        "rows_with_target_field": counts.with_target_field,
        "labelled_rows": counts.labelled_rows,
        "labelled_share": labelled_share,
        # The first target's floor at the top, as one-target pipelines have always had it; every target's below.
        **{k: v for k, v in first.items() if k.startswith("bayes_") or k == "floor_note"},
        **({"target": {k: first[k] for k in ("name", "mean", "noise_sd", "classes") if k in first}} if first else {}),
        "targets": described,
        "mess": {"feature": MESS, "category": CATEGORY_MESS, "target": TARGET_MESS,
                 "class_target": demo_classes.TARGET_MESS, "malformed_json": MALFORMED_JSON,
                 "duplicate_rows": DUPLICATES},
        "features": {p.name: {"type": p.type, "effect_sd": round(_effect_sd(targets, j, p), 4),
                              "non_linear": p.square} for j, p in enumerate(plans)},
        "python": platform.python_version(),
    }
    storage.write_json(path + ".meta.json", meta)
    return meta


def _described(tp: Any, floor: Any) -> dict[str, Any]:
    if isinstance(tp, NumberPlan):
        return {"name": tp.name, "type": tp.target.type, **{k: round(v, 4) for k, v in floor.summary().items()},
                "floor_note": "MAE of the Bayes-optimal predictor on the labelled rows the pipeline can use "
                              "(distinct, parseable, valid target), given the features that survive the mess",
                "mean": round(tp.mean, 4), "noise_sd": round(tp.noise_sd, 4)}
    return {"name": tp.name, **demo_classes.meta(tp, floor)}


def _effect_sd(targets: list[Any], j: int, p: FeaturePlan) -> float:
    """The feature's effect on the first target: the sd of its contribution (a class target: of its scores)."""
    if not targets:
        return 0.0
    first = targets[0]
    if isinstance(first, NumberPlan):
        return math.sqrt(first.contribution_var[p.name])
    return float(np.sqrt((first.weights[j] ** 2).mean()) * np.std(p.shape(p.draw(np.random.default_rng(j), 10_000))))
