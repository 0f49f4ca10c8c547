"""`report.html` beside run.json: the charts people look at, then the numbers.

Charts (SVG written by stepkit.local.svg; numbers from numpy), per target: for a number, predicted
vs actual and residuals on the human-QA rows with a known target (a fixed sample) and interval
coverage by predicted decile; for a class, the confusion matrix, calibration curve and per-class
precision/recall (stepkit/local/class_charts.py). Then the stage timeline. The data is read
straight from the tables' Parquet files: the QA table is the one stepkit's human_qa template
writes (`qa_table` of the run's view), the results the one final_results writes.
"""
from __future__ import annotations

import html
import threading
import time
from pathlib import Path
from typing import Any

from stepkit.local import class_charts
from stepkit.local.runs import RunRecord
from stepkit.local.svg import Axes, Svg, text_width, viridis

SAMPLE_ROWS = 20_000
# The metrics the models table shows (those a run's models have), and their headings.
METRIC_COLUMNS = {"mae": "MAE", "rmse": "RMSE", "r2": "R²", "coverage": "coverage", "accuracy": "accuracy",
                  "balanced_accuracy": "balanced accuracy", "macro_f1": "macro F1", "log_loss": "log loss",
                  "roc_auc": "ROC AUC", "ece": "ECE"}


def _parquet(location: str) -> str:
    return f"read_parquet('{Path(location).as_posix().rstrip('/')}/**/*.parquet', hive_partitioning = false)"


def _table_of(lctx, role: str) -> str | None:
    """The table key of the QA (`human_qa`) or results (`final_results`) table of the run, if any."""
    key = getattr(lctx, f"{role}_table", role)
    return key if key in lctx.compile.p.tables.names() else None


def _location(lctx, role: str) -> Path | None:
    key = _table_of(lctx, role)
    loc = Path(lctx.names.table_location(key, lctx.run_id)) if key else None
    return loc if loc is not None and loc.is_dir() and any(loc.rglob("*.parquet")) else None


def _qa_sample(lctx, t: Any = None, columns: Any = None) -> dict[str, Any] | None:
    import duckdb

    from stepkit.spec.columns import Columns

    p = lctx.compile.p
    t = t or p.target_list[0]
    columns = columns or Columns(p.target_list)
    loc = _location(lctx, "human_qa")
    if loc is None:
        return None
    known, predicted = columns.known(t), columns.predicted(t)
    lower, upper = columns.of("lower_bound", t), columns.of("upper_bound", t)
    con = duckdb.connect()
    try:
        # A fixed sample (hash of the id), so the same run always draws the same picture.
        rows = con.execute(
            f"SELECT {known}, {predicted}, {lower}, {upper} FROM {_parquet(str(loc))} "
            f"WHERE {known} IS NOT NULL ORDER BY hash(id) LIMIT {SAMPLE_ROWS}"
        ).fetchnumpy()
        labelled = con.execute(
            f"SELECT count(*), avg(CASE WHEN {known} BETWEEN {lower} AND {upper} THEN 1.0 ELSE 0.0 END), "
            f"avg(abs({predicted} - {known})) FROM {_parquet(str(loc))} WHERE {known} IS NOT NULL"
        ).fetchone()
    finally:
        con.close()
    return {"actual": rows[known], "predicted": rows[predicted], "lower": rows[lower],
            "upper": rows[upper], "labelled": labelled[0], "coverage": labelled[1], "mae": labelled[2]}


def _class_stats(lctx, t: Any, columns: Any) -> dict[str, Any] | None:
    import duckdb

    loc = _location(lctx, "human_qa")
    if loc is None:
        return None
    con = duckdb.connect()
    try:
        return class_charts.stats(con, _parquet(str(loc)), t, columns)
    finally:
        con.close()


def _final_counts(lctx) -> list[tuple[str, int]]:
    import duckdb

    key = _table_of(lctx, "final_results")
    if key is None:
        return []
    loc = Path(lctx.names.table_location(key, lctx.run_id))
    if not loc.is_dir() or not any(loc.rglob("*.parquet")):
        return []
    con = duckdb.connect()
    try:
        columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {_parquet(str(loc))}").fetchall()]
        if "prediction_source" not in columns:  # a results table of the pipeline's own: its rows
            return [("(all rows)", con.execute(f"SELECT count(*) FROM {_parquet(str(loc))}").fetchone()[0])]
        return con.execute(f"SELECT prediction_source, count(*) FROM {_parquet(str(loc))} GROUP BY 1 ORDER BY 1"
                           ).fetchall()
    finally:
        con.close()


def _save(svg: Svg, run_dir: Path, name: str, title: str, out: list[tuple[str, str]]) -> None:
    from stepkit.local.runs import write_atomic

    write_atomic(run_dir / name, svg.render())
    out.append((name, title))


RED, BLUE, GREEN = "#d62728", "#1f77b4", "#2ca02c"
STATUS_COLORS = {"succeeded": BLUE, "failed": RED, "running": "#ff7f0e"}


def _density_chart(actual, pred, target: str) -> Svg:
    """Predicted vs actual as binned cells (45 x 45 on one square range) coloured by log count."""
    import numpy as np

    lo, hi = float(min(actual.min(), pred.min())), float(max(actual.max(), pred.max()))
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges, _ = np.histogram2d(actual, pred, bins=45, range=[[lo, hi], [lo, hi]])
    svg = Svg(660, 572)
    ax = Axes(svg, 70, 40, 470, 470, (lo, hi), (lo, hi))
    # Edges rounded once, so neighbouring cells share an edge exactly (no hairline seams).
    px, py = np.round([ax.x(e) for e in edges], 1), np.round([ax.y(e) for e in edges], 1)
    top = float(counts.max())
    ix, iy = np.nonzero(counts)
    n = counts[ix, iy].astype(int)
    t = np.log(n) / np.log(top) if top > 1 else np.zeros(len(n))
    with svg.group(shape_rendering="crispEdges"):
        for i, j, c, fill in zip(ix.tolist(), iy.tolist(), n.tolist(), viridis(t)):
            svg.rect(px[i], py[j + 1], px[i + 1] - px[i], py[j] - py[j + 1], fill, class_="cell",
                     tip=f"{c:,} rows: actual {edges[i]:.1f} to {edges[i + 1]:.1f}, "
                         f"predicted {edges[j]:.1f} to {edges[j + 1]:.1f}")
    svg.line(ax.x(lo), ax.y(lo), ax.x(hi), ax.y(hi), RED, 1.2)
    ax.frame(f"actual {target}", f"predicted {target}")
    ax.title(f"Predicted vs actual ({len(actual):,} labelled QA rows)")
    ax.legend([("perfect", RED, "line")])
    # The colour bar: 64 steps of the scale, ticks at powers of ten.
    bar = Axes(svg, 560, 40, 14, 470, (0, 1), (0, 1))
    ys = np.round([bar.y(k / 64) for k in range(65)], 1)
    with svg.group(shape_rendering="crispEdges"):
        for k, fill in enumerate(viridis(np.linspace(0, 1, 64))):
            svg.rect(bar.left, ys[k + 1], bar.width, ys[k] - ys[k + 1], fill)
    svg.rect(bar.left, bar.top, bar.width, bar.height, "none", stroke="#333333", stroke_width=0.8)
    for p in range(int(np.log10(top)) + 1):
        y = bar.y(p * np.log(10) / np.log(top)) if top > 1 else bar.y(0)
        svg.line(bar.left + bar.width, y, bar.left + bar.width + 4, y, "#333333")
        svg.text(bar.left + bar.width + 7, y, f"{10 ** p:,}", size=10, middle=True)
    svg.text(bar.left + bar.width + 62, bar.top + bar.height / 2, "rows (log)", anchor="middle", rotate=True)
    return svg


def _residual_chart(resid, target: str) -> Svg:
    import numpy as np

    counts, edges = np.histogram(resid, bins=60)
    median = float(np.median(resid))
    svg = Svg(715, 440)
    xlim = (min(float(edges[0]), 0.0), max(float(edges[-1]), 0.0))  # 0 always in sight, as its line is
    ax = Axes(svg, 75, 40, 615, 330, xlim, (0, float(counts.max()) * 1.05))
    for c, a, b in zip(counts.tolist(), edges[:-1].tolist(), edges[1:].tolist()):
        if c:
            svg.rect(ax.x(a), ax.y(c), ax.x(b) - ax.x(a), ax.y(0) - ax.y(c), BLUE, class_="bar", fill_opacity="0.85",
                     tip=f"{c:,} rows with a residual in [{a:.2f}, {b:.2f})")
    svg.line(ax.x(0), ax.top, ax.x(0), ax.y(0), "#000000")
    svg.line(ax.x(median), ax.top, ax.x(median), ax.y(0), RED, 1.2, dash="5 3")
    ax.frame(f"residual: predicted - actual {target}", "rows")
    ax.title(f"Residuals (MAE {np.mean(np.abs(resid)):.2f}, RMSE {np.sqrt(np.mean(resid ** 2)):.2f})")
    ax.legend([(f"median {median:+.2f}", RED, "dash")], "upper right")
    return svg


def _coverage_chart(actual, pred, lo, hi, target: str, coverage: float) -> Svg:
    """Share of rows whose actual value is inside [lower, upper], by decile of the prediction."""
    import numpy as np

    inside = (actual >= lo) & (actual <= hi)
    edges = np.quantile(pred, np.linspace(0, 1, 11))
    decile = np.clip(np.searchsorted(edges, pred, side="right") - 1, 0, 9)
    rows = np.bincount(decile, minlength=10)
    hits = np.bincount(decile, weights=inside, minlength=10)
    widths = np.bincount(decile, weights=hi - lo, minlength=10)
    svg = Svg(770, 440)
    ax = Axes(svg, 75, 40, 670, 330, (0.4, 10.6), (0, 1.25))
    for d in range(10):
        if not rows[d]:
            continue  # ties in the predictions can leave a decile empty: no bar rather than a made-up one
        share, half = hits[d] / rows[d], widths[d] / rows[d] / 2
        svg.rect(ax.x(d + 0.6), ax.y(share), ax.x(d + 1.4) - ax.x(d + 0.6), ax.y(0) - ax.y(share), GREEN,
                 class_="bar", fill_opacity="0.85",
                 tip=f"decile {d + 1}: {int(hits[d]):,} of {int(rows[d]):,} rows inside ({share:.1%}), "
                     f"mean half-width {half:.2f}")
        svg.text(ax.x(d + 1), ax.y(share + 0.02) - 2, f"±{half:.1f}", size=9, anchor="middle")
    svg.line(ax.left, ax.y(coverage), ax.left + ax.width, ax.y(coverage), RED, 1.2, dash="5 3")
    ax.frame(f"decile of predicted {target} (label: mean half-width of the interval)", "coverage",
             xticks=[(d, str(d)) for d in range(1, 11)], yticks=[(v / 5, f"{v * 20}%") for v in range(7)])
    ax.title(f"Interval coverage by predicted decile (overall {inside.mean():.1%})")
    ax.legend([("actual inside [lower, upper]", GREEN, "box"), (f"target {coverage:.0%}", RED, "dash")],
              "upper center")
    return svg


def _qa_charts(run_dir: Path, qa: dict[str, Any] | None, target: str, coverage: float, suffix: str = ""
               ) -> list[tuple[str, str]]:
    import numpy as np

    out: list[tuple[str, str]] = []
    if qa is None:
        return out
    # DuckDB hands NULLs over as masked arrays: they become NaN, and rows without both an actual and
    # a predicted value are left out (a NULL bound only counts as "not inside").
    actual, pred, lo, hi = (np.ma.filled(np.ma.asarray(qa[k], dtype=float), np.nan)
                            for k in ("actual", "predicted", "lower", "upper"))
    keep = np.isfinite(actual) & np.isfinite(pred)
    if not keep.any():
        return out
    actual, pred, lo, hi = actual[keep], pred[keep], lo[keep], hi[keep]
    of = f" ({target})" if suffix else ""
    _save(_density_chart(actual, pred, target), run_dir, f"predicted_vs_actual{suffix}.svg", f"Predicted vs actual{of}",
          out)
    _save(_residual_chart(pred - actual, target), run_dir, f"residuals{suffix}.svg", f"Residuals{of}", out)
    _save(_coverage_chart(actual, pred, lo, hi, target, coverage), run_dir, f"interval_coverage{suffix}.svg",
          f"Interval coverage{of}", out)
    return out


def _timeline_chart(run_dir: Path, record: RunRecord) -> list[tuple[str, str]]:
    """One row per stage that started, a bar from its start to its end: stages that ran side by
    side overlap on the time axis."""
    out: list[tuple[str, str]] = []
    stages = [s for s in record.stages if s.start is not None]
    if not stages:
        return out
    t0 = min(s.start for s in stages)
    # A stage still open (a run stopped in it) ends where the run did; never "now", so the file is reproducible.
    last = record.ended or max(s.end or s.start for s in stages)
    ends = [s.end if s.end is not None else max(last, s.start) for s in stages]
    span = max(ends) - t0
    left = max(90.0, max(text_width(s.name, 10) for s in stages) + 20)
    svg = Svg(880, int(36 * len(stages) + 90))
    ax = Axes(svg, left, 36, 880 - left - 20, 36 * len(stages), (0, span * 1.15 + 0.1), (len(stages) - 0.5, -0.5))
    ax.frame("seconds since the run started", "", yticks=[(i, s.name) for i, s in enumerate(stages)], grid=True)
    for i, (s, end) in enumerate(zip(stages, ends)):
        x0, x1 = ax.x(s.start - t0), ax.x(end - t0)
        note = "" if s.status == "succeeded" else f" ({s.status})"
        svg.rect(x0, ax.y(i - 0.35), max(x1 - x0, 1.0), ax.y(i + 0.35) - ax.y(i - 0.35),
                 STATUS_COLORS.get(s.status, "#7f7f7f"), class_="stage",
                 tip=f"{s.name}: {s.status}, {s.start - t0:.1f} s to {end - t0:.1f} s")
        svg.text(max(x1, x0 + 1.0) + 4, ax.y(i), f"{end - s.start:.1f} s{note}", size=10, middle=True)
    ax.title("Stage timeline")
    _save(svg, run_dir, "stage_timeline.svg", "Stage timeline", out)
    return out


class QaCharts:
    """The human-QA charts, drawn in a thread as soon as the QA table is written, while the
    run's last stages go on (DuckDB and the workers release the GIL): the report then waits
    only for the timeline chart. Drawing is deterministic, so early or late gives the same files.

    Still a thread now that the charts are SVG: drawing 20,000 rows takes ~20 ms, but the sample
    query before it takes ~110 ms on a 300k-row QA table (more on bigger runs), and that is what
    the early start hides (measured 2026-11; it was 1.1 s of matplotlib drawing on top)."""

    def __init__(self, lctx, run_dir: Path):
        p = lctx.compile.p
        coverage = p.training.interval.coverage if p.training else 0.8
        self._args = (lctx, run_dir, p.target_list, coverage)
        self._result: tuple[list[list[Any]], list[tuple[str, str]]] | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._draw, name="stepkit-report", daemon=True)
            self._thread.start()

    def _draw(self) -> None:
        from stepkit.spec.columns import Columns

        lctx, run_dir, targets, coverage = self._args
        columns = Columns(targets)
        try:
            rows: list[list[Any]] = []
            charts: list[tuple[str, str]] = []
            for t in targets:
                suffix = f"_{t.name}" if columns.several else ""
                of = f" ({t.name})" if columns.several else ""
                if t.task == "classification":
                    st = _class_stats(lctx, t, columns)
                    charts += class_charts.draw(run_dir, st, t.name, suffix, _save)
                    if st is not None:
                        rows += [[f"labelled QA rows{of}", st["labelled"]], [f"QA accuracy{of}", st["accuracy"]],
                                 [f"QA calibration error (ECE){of}", st["ece"]]]
                    continue
                qa = _qa_sample(lctx, t, columns)
                charts += _qa_charts(run_dir, qa, t.name, coverage, suffix)
                if qa is not None:
                    rows += [[f"labelled QA rows{of}", qa["labelled"]], [f"QA MAE (all labelled rows){of}", qa["mae"]],
                             [f"QA interval coverage{of}", qa["coverage"]]]
            self._result = (rows, charts)
        except BaseException as e:  # noqa: BLE001 - re-raised in result(), on the main thread
            self._error = e

    def result(self) -> tuple[list[list[Any]], list[tuple[str, str]]]:
        if self._thread is None:
            self._draw()  # never started (e.g. a resumed run that skipped the QA stage)
        else:
            self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


def _table(head: list[str], rows: list[list[Any]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def write(lctx, record: RunRecord, run_dir: Path, qa_charts: QaCharts | None = None) -> Path:
    p = lctx.compile.p
    qa_rows, charts = (qa_charts or QaCharts(lctx, run_dir)).result()
    charts = charts + _timeline_chart(run_dir, record)
    counts = _final_counts(lctx)
    stage_rows = [[s.name, s.type, s.status, s.seconds, s.rows_out,
                   (s.rows_out / s.seconds) if s.rows_out and s.seconds else None, s.attempts] for s in record.stages]
    shown = [k for k in METRIC_COLUMNS if any(k in v for v in record.metrics.values())]
    metric_rows = [[m, *[v.get(k) for k in shown]] for m, v in record.metrics.items()]
    seconds = (record.ended or time.time()) - record.started
    summary = [
        ["run", record.run_id], ["pipeline", f"{p.name} ({record.pipeline})"], ["status", record.status],
        ["source", f"{record.source} ({lctx.extra.get('source_rows', 0):,} rows)"],
        ["wall time", f"{seconds:.1f} s"], ["chosen model", record.training.get("chosen_model")],
    ]
    summary += qa_rows
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>stepkit run {html.escape(record.run_id)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:0.5em 0}"
        ".charts{display:grid;grid-template-columns:1fr 1fr;gap:1em}</style></head><body>",
        f"<h1>{html.escape(p.name)}: run {html.escape(record.run_id)}</h1>",
        _table(["", ""], summary),
        "<div class='charts'>",
        # Linked: an SVG opened by itself shows each bar's and cell's exact numbers on hover.
        *[f"<figure><a href='{n}'><img src='{n}' alt='{html.escape(t)}'></a><figcaption>{html.escape(t)}"
          "</figcaption></figure>" for n, t in charts],
        "</div>",
        "<h2>Models (holdout)</h2>", _table(["model", *[METRIC_COLUMNS[k] for k in shown]], metric_rows),
        "<h2>Final results by source</h2>", _table(["prediction_source", "rows"], [list(c) for c in counts]),
        "<h2>Stages</h2>", _table(["stage", "type", "status", "seconds", "rows out", "rows/s", "attempts"], stage_rows),
        "<h2>Outputs</h2>",
        _table(["table", "path", "rows"], [[k, v["path"] if v["exists"] else "(cleaned up)", v["rows"]]
                                          for k, v in record.outputs.get("tables", {}).items()]),
        "<p>Run record: <code>run.json</code> in this folder.</p></body></html>",
    ]
    path = run_dir / "report.html"
    from stepkit.local.runs import write_atomic

    write_atomic(path, "\n".join(parts) + "\n")
    return path
