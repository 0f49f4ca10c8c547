"""`report.html` beside run.json: the charts people look at, then the numbers.

Charts (PNG, matplotlib's Agg backend, object API): predicted vs actual and residuals on the human-QA
rows with a known target (a fixed sample), interval coverage by predicted decile, and the
stage timeline. The data is read straight from the tables' Parquet files.
"""
from __future__ import annotations

import html
import threading
import time
from pathlib import Path
from typing import Any

from stepkit.local.runs import RunRecord

SAMPLE_ROWS = 20_000


def _parquet(location: str) -> str:
    return f"read_parquet('{Path(location).as_posix().rstrip('/')}/**/*.parquet', hive_partitioning = false)"


def _qa_sample(lctx) -> dict[str, Any] | None:
    import duckdb

    t = lctx.compile.p.target.name
    loc = Path(lctx.names.table_location("human_qa", lctx.run_id))
    if not loc.is_dir() or not any(loc.rglob("*.parquet")):
        return None
    con = duckdb.connect()
    try:
        # A fixed sample (hash of the id), so the same run always draws the same picture.
        rows = con.execute(
            f"SELECT known_{t}, predicted_{t}, lower_bound, upper_bound FROM {_parquet(str(loc))} "
            f"WHERE known_{t} IS NOT NULL ORDER BY hash(id) LIMIT {SAMPLE_ROWS}"
        ).fetchnumpy()
        labelled = con.execute(
            f"SELECT count(*), avg(CASE WHEN known_{t} BETWEEN lower_bound AND upper_bound THEN 1.0 ELSE 0.0 END), "
            f"avg(abs(predicted_{t} - known_{t})) FROM {_parquet(str(loc))} WHERE known_{t} IS NOT NULL"
        ).fetchone()
    finally:
        con.close()
    return {"actual": rows[f"known_{t}"], "predicted": rows[f"predicted_{t}"], "lower": rows["lower_bound"],
            "upper": rows["upper_bound"], "labelled": labelled[0], "coverage": labelled[1], "mae": labelled[2]}


def _final_counts(lctx) -> list[tuple[str, int]]:
    import duckdb

    loc = Path(lctx.names.table_location("final_results", lctx.run_id))
    if not loc.is_dir() or not any(loc.rglob("*.parquet")):
        return []
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT prediction_source, count(*) FROM {_parquet(str(loc))} GROUP BY 1 ORDER BY 1"
                           ).fetchall()
    finally:
        con.close()


def _figure(figsize: tuple[float, float]):
    # The object API, not pyplot: no global figure state, so charts can be drawn in a thread.
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def _save(fig, run_dir: Path, name: str, title: str, out: list[tuple[str, str]]) -> None:
    fig.tight_layout()
    fig.savefig(run_dir / name, dpi=110)
    out.append((name, title))


def _qa_charts(run_dir: Path, qa: dict[str, Any] | None, target: str, coverage: float) -> list[tuple[str, str]]:
    import numpy as np

    out: list[tuple[str, str]] = []
    if qa is None or not len(qa["actual"]):
        return out
    actual = np.asarray(qa["actual"], dtype=float)
    pred = np.asarray(qa["predicted"], dtype=float)
    lo, hi = np.asarray(qa["lower"], dtype=float), np.asarray(qa["upper"], dtype=float)

    fig, ax = _figure((6, 5.2))
    hb = ax.hexbin(actual, pred, gridsize=45, cmap="viridis", mincnt=1, bins="log")
    fig.colorbar(hb, ax=ax, label="rows (log)")
    lims = [min(actual.min(), pred.min()), max(actual.max(), pred.max())]
    ax.plot(lims, lims, color="#d62728", lw=1.2, label="perfect")
    ax.set_xlabel(f"actual {target}")
    ax.set_ylabel(f"predicted {target}")
    ax.set_title(f"Predicted vs actual ({len(actual):,} labelled QA rows)")
    ax.legend(loc="upper left")
    _save(fig, run_dir, "predicted_vs_actual.png", "Predicted vs actual", out)

    resid = pred - actual
    fig, ax = _figure((6.5, 4))
    ax.hist(resid, bins=60, color="#1f77b4", alpha=0.85)
    ax.axvline(0, color="black", lw=1)
    ax.axvline(float(np.median(resid)), color="#d62728", lw=1.2, ls="--", label=f"median {np.median(resid):+.2f}")
    ax.set_xlabel(f"residual: predicted - actual {target}")
    ax.set_ylabel("rows")
    ax.set_title(f"Residuals (MAE {np.mean(np.abs(resid)):.2f}, RMSE {np.sqrt(np.mean(resid ** 2)):.2f})")
    ax.legend()
    _save(fig, run_dir, "residuals.png", "Residuals", out)

    inside = (actual >= lo) & (actual <= hi)
    edges = np.quantile(pred, np.linspace(0, 1, 11))
    decile = np.clip(np.searchsorted(edges, pred, side="right") - 1, 0, 9)
    share = [inside[decile == d].mean() if np.any(decile == d) else np.nan for d in range(10)]
    width = [np.mean((hi - lo)[decile == d]) if np.any(decile == d) else np.nan for d in range(10)]
    fig, ax = _figure((7, 4))
    ax.bar(range(1, 11), share, color="#2ca02c", alpha=0.85, label="actual inside [lower, upper]")
    ax.axhline(coverage, color="#d62728", ls="--", lw=1.2, label=f"target {coverage:.0%}")
    for d, (s, w) in enumerate(zip(share, width), 1):
        if not np.isnan(s):
            ax.text(d, s + 0.02, f"±{w / 2:.1f}", ha="center", fontsize=8)
    ax.set_ylim(0, 1.25)
    ax.set_xticks(range(1, 11))
    ax.set_xlabel(f"decile of predicted {target} (label: mean half-width of the interval)")
    ax.set_ylabel("coverage")
    ax.set_title(f"Interval coverage by predicted decile (overall {inside.mean():.1%})")
    ax.legend(loc="upper center", ncol=2, fontsize=8)
    _save(fig, run_dir, "interval_coverage.png", "Interval coverage", out)
    return out


def _timeline_chart(run_dir: Path, record: RunRecord) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    stages = [s for s in record.stages if s.start is not None and s.end is not None]
    if not stages:
        return out
    t0 = min(s.start for s in stages)
    fig, ax = _figure((8, 0.45 * len(stages) + 1.3))
    colors = {"succeeded": "#1f77b4", "failed": "#d62728", "running": "#ff7f0e"}
    for i, s in enumerate(stages):
        ax.barh(i, max(s.end - s.start, 0.01), left=s.start - t0, color=colors.get(s.status, "#7f7f7f"))
        ax.text(s.end - t0, i, f" {s.end - s.start:.1f} s", va="center", fontsize=8)
    ax.set_yticks(range(len(stages)))
    ax.set_yticklabels([s.name for s in stages])
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the run started")
    ax.set_title("Stage timeline")
    ax.set_xlim(0, (max(s.end for s in stages) - t0) * 1.15 + 0.1)
    _save(fig, run_dir, "stage_timeline.png", "Stage timeline", out)
    return out


class QaCharts:
    """The human-QA charts, drawn in a thread as soon as the QA table is written, while the
    run's last stages go on (DuckDB and the workers release the GIL): the report then waits
    only for the timeline chart. Drawing is deterministic, so early or late gives the same files."""

    def __init__(self, lctx, run_dir: Path):
        p = lctx.compile.p
        self._args = (lctx, run_dir, p.target.name, p.training.interval.coverage)
        self._result: tuple[dict[str, Any] | None, list[tuple[str, str]]] | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._draw, name="stepkit-report", daemon=True)
            self._thread.start()

    def _draw(self) -> None:
        lctx, run_dir, target, coverage = self._args
        try:
            qa = _qa_sample(lctx)
            self._result = (qa, _qa_charts(run_dir, qa, target, coverage))
        except BaseException as e:  # noqa: BLE001 - re-raised in result(), on the main thread
            self._error = e

    def result(self) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
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
    qa, charts = (qa_charts or QaCharts(lctx, run_dir)).result()
    charts = charts + _timeline_chart(run_dir, record)
    counts = _final_counts(lctx)
    stage_rows = [[s.name, s.type, s.status, s.seconds, s.rows_out,
                   (s.rows_out / s.seconds) if s.rows_out and s.seconds else None, s.attempts] for s in record.stages]
    metric_rows = [[m, v.get("mae"), v.get("rmse"), v.get("r2"), v.get("coverage")] for m, v in record.metrics.items()]
    seconds = (record.ended or time.time()) - record.started
    summary = [
        ["run", record.run_id], ["pipeline", f"{p.name} ({record.pipeline})"], ["status", record.status],
        ["source", f"{record.source} ({lctx.extra.get('source_rows', 0):,} rows)"],
        ["wall time", f"{seconds:.1f} s"], ["chosen model", record.training.get("chosen_model")],
    ]
    if qa is not None:
        summary += [["labelled QA rows", qa["labelled"]], ["QA MAE (all labelled rows)", qa["mae"]],
                    ["QA interval coverage", qa["coverage"]]]
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
        *[f"<figure><img src='{n}' alt='{html.escape(t)}'><figcaption>{html.escape(t)}</figcaption></figure>"
          for n, t in charts],
        "</div>",
        "<h2>Models (holdout)</h2>", _table(["model", "MAE", "RMSE", "R²", "coverage"], metric_rows),
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
