"""The report's charts for a class target, from the human-QA rows with a known class: the
confusion matrix, the calibration curve (the predicted class's probability against how often it
is right, in the 15 bins the expected calibration error uses) and per-class precision and recall.

The figures are aggregated by DuckDB over every labelled QA row (counts per true and predicted
class, per probability bin), so the charts are exact at any size and drawn from a few dozen numbers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from stepkit.local.svg import Axes, Svg, text_width, viridis
from stepkit.ml.metrics import ECE_BINS

RED, BLUE, GREEN, GREY = "#d62728", "#1f77b4", "#2ca02c", "#7f7f7f"


def stats(con: Any, table: str, t: Any, columns: Any) -> dict[str, Any] | None:
    """Counts per (true, predicted) class and per probability bin, over the QA rows with a known class."""
    known, predicted, prob = columns.known(t), columns.predicted(t), columns.of("probability", t)
    where = f"{known} IS NOT NULL AND {predicted} IS NOT NULL"
    pairs = con.execute(f"SELECT lower(CAST({known} AS VARCHAR)), lower(CAST({predicted} AS VARCHAR)), count(*) "
                        f"FROM {table} WHERE {where} GROUP BY 1, 2").fetchall()
    if not pairs:
        return None
    bins = con.execute(
        f"SELECT least(CAST(floor({prob} * {ECE_BINS}) AS INTEGER), {ECE_BINS - 1}) AS b, avg({prob}), "
        f"avg(CASE WHEN {predicted} = {known} THEN 1.0 ELSE 0.0 END), count(*) FROM {table} "
        f"WHERE {where} AND {prob} IS NOT NULL GROUP BY 1 ORDER BY 1").fetchall()
    classes = list(t.classes)
    index = {c: i for i, c in enumerate(classes)}
    k = len(classes)
    counts = [[0] * k for _ in range(k)]
    for a, b, n in pairs:
        if a in index and b in index:
            counts[index[a]][index[b]] += int(n)
    total = sum(map(sum, counts))
    right = sum(counts[i][i] for i in range(k))
    calibration = [(float(c), float(a), int(n)) for _, c, a, n in bins]
    ece = sum(n / total * abs(a - c) for c, a, n in calibration) if total else 0.0
    precision, recall = [], []
    for i in range(k):
        predicted_i, true_i = sum(counts[r][i] for r in range(k)), sum(counts[i])
        precision.append(counts[i][i] / predicted_i if predicted_i else None)
        recall.append(counts[i][i] / true_i if true_i else None)
    return {"classes": classes, "counts": counts, "calibration": calibration, "labelled": total,
            "accuracy": right / total if total else None, "ece": ece, "precision": precision, "recall": recall}


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


def confusion_matrix(st: dict[str, Any], target: str) -> Svg:
    """K x K cells, coloured by the share of the true class's rows (a row of the matrix)."""
    classes, counts = st["classes"], st["counts"]
    k = len(classes)
    label = max(text_width(c, 10) for c in classes)
    cell = max(28.0, min(70.0, 460.0 / k))
    left, top = 80 + label, 60
    title = f"Confusion matrix of {target} ({st['labelled']:,} labelled QA rows)"
    width = max(left + cell * k + 40, text_width(title, 13) + 40)
    svg = Svg(int(width), int(top + cell * k + 60 + label))
    svg.text(width / 2, 24, title, size=13, anchor="middle", weight="600")
    shares = [[n / max(sum(row), 1) for n in row] for row in counts]
    fills = viridis([s for row in shares for s in row])
    with svg.group(shape_rendering="crispEdges"):
        for i in range(k):
            for j in range(k):
                x, y = left + j * cell, top + i * cell
                share = shares[i][j]
                svg.rect(x, y, cell, cell, fills[i * k + j], class_="cell",
                         tip=f"{counts[i][j]:,} rows: true {classes[i]}, predicted {classes[j]} ({share:.1%} of "
                             f"the true {classes[i]} rows)")
                if cell >= 34:
                    svg.text(x + cell / 2, y + cell / 2, f"{counts[i][j]:,}", size=10, anchor="middle", middle=True,
                             fill="#ffffff" if share < 0.6 else "#000000")
    for i, c in enumerate(classes):
        svg.text(left - 6, top + (i + 0.5) * cell, c, size=10, anchor="end", middle=True)
        svg.text(left + (i + 0.5) * cell, top + k * cell + 8, c, size=10, anchor="end", rotate=True)
    svg.text(20, top + k * cell / 2, "true class", anchor="middle", rotate=True)
    svg.text(left + k * cell / 2, top + k * cell + label + 30, "predicted class", anchor="middle")
    return svg


def calibration_curve(st: dict[str, Any], target: str) -> Svg:
    """Accuracy against the mean predicted probability per bin; a calibrated model lies on the diagonal."""
    svg = Svg(600, 520)
    bins = st["calibration"]
    lo = min(0.0, *(c for c, _, _ in bins)) if bins else 0.0
    ax = Axes(svg, 75, 40, 440, 420, (lo, 1.0), (0.0, 1.0))
    svg.line(ax.x(lo), ax.y(lo), ax.x(1.0), ax.y(1.0), RED, 1.2, dash="5 3")
    biggest = max((n for _, _, n in bins), default=1)
    points = [(ax.x(c), ax.y(a)) for c, a, _ in bins]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        svg.line(x0, y0, x1, y1, BLUE, 1.5)
    for (c, a, n), (x, y) in zip(bins, points):
        r = 3 + 7 * (n / biggest) ** 0.5  # area grows with the rows in the bin
        svg.rect(x - r, y - r, 2 * r, 2 * r, BLUE, class_="bin", fill_opacity="0.8",
                 tip=f"{n:,} rows: mean probability {c:.3f}, right on {a:.1%}")
    ax.frame("predicted class's probability (mean per bin)", "share right")
    ax.title(f"Calibration of {target} (ECE {st['ece']:.3f}, {ECE_BINS} bins)")
    ax.legend([("calibrated", RED, "dash"), ("QA rows (box area: rows)", BLUE, "box")], "upper left")
    return svg


def class_bars(st: dict[str, Any], target: str) -> Svg:
    """Precision and recall of each class, side by side."""
    classes = st["classes"]
    k = len(classes)
    svg = Svg(max(500, 90 * k + 160), 460)
    ax = Axes(svg, 75, 40, svg.width - 110, 320, (-0.5, k - 0.5), (0.0, 1.15))
    for i, c in enumerate(classes):
        for offset, value, color, what in ((-0.2, st["precision"][i], BLUE, "precision"),
                                          (0.2, st["recall"][i], GREEN, "recall")):
            if value is None:
                continue  # no row predicted (precision) or none true (recall): no bar rather than a made-up one
            svg.rect(ax.x(i + offset - 0.18), ax.y(value), ax.x(i + offset + 0.18) - ax.x(i + offset - 0.18),
                     ax.y(0) - ax.y(value), color, class_="bar", fill_opacity="0.85",
                     tip=f"{c}: {what} {_fmt(value)} ({sum(st['counts'][i]):,} true rows)")
    ax.frame("class", "", xticks=[(i, c) for i, c in enumerate(classes)],
             yticks=[(v / 5, f"{v * 20}%") for v in range(6)])
    ax.title(f"Precision and recall per class of {target}")
    ax.legend([("precision", BLUE, "box"), ("recall", GREEN, "box")], "upper right")
    return svg


def draw(run_dir: Path, st: dict[str, Any] | None, target: str, suffix: str, save: Any) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if st is None:
        return out
    for name, title, chart in (("confusion_matrix", "Confusion matrix", confusion_matrix),
                               ("calibration_curve", "Calibration curve", calibration_curve),
                               ("class_precision_recall", "Precision and recall per class", class_bars)):
        save(chart(st, target), run_dir, f"{name}{suffix}.svg", f"{title}{f' ({target})' if suffix else ''}", out)
    return out
