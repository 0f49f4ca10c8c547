"""The local run's report charts (stepkit/local/svg.py, stepkit/local/report.py): the SVG writer's
numbers and ticks, each chart's shapes tied to its data, byte-for-byte repeatability, and
report.html with and without data (real QA tables read by DuckDB)."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from stepkit.local import report
from stepkit.local.runs import RunRecord, StageRecord
from stepkit.local.svg import Svg, num, tick_label, ticks

SVG = "{http://www.w3.org/2000/svg}"
ROWS = 5_000
SMALL = Path(__file__).resolve().parent / "data" / "small_pipeline.yaml"


@pytest.mark.parametrize("value, text", [(1.25, "1.2"), (1.26, "1.3"), (-0.04, "0.0"), (-0.06, "-0.1"),
                                         (0.0, "0.0"), (123456.78, "123456.8")])
def test_coordinates_have_one_decimal(value, text):
    assert num(value) == text


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_coordinates_are_refused(value):
    with pytest.raises(ValueError):
        num(value)


@pytest.mark.parametrize("lo, hi, expected", [
    (0, 1.25, [0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2]),
    (-12.3, 107, [0, 20, 40, 60, 80, 100]),
    (0, 38.2, [0, 10, 20, 30]),
    (0, 5.7, [0, 1, 2, 3, 4, 5]),
    (-24.8, 22.1, [-20, -10, 0, 10, 20]),
    (0, 10_500, [0, 2000, 4000, 6000, 8000, 10000]),
    (3, 3, [2.6, 2.8, 3.0, 3.2, 3.4]),  # an empty range is widened, not divided by zero
])
def test_ticks_are_nice_steps_inside_the_range(lo, hi, expected):
    values, step = ticks(lo, hi)
    assert values == pytest.approx(expected)
    assert any(abs(step - m * 10.0 ** k) < 1e-12 for m in (1, 2, 5) for k in range(-3, 6))


@pytest.mark.parametrize("value, step, text", [(0.2, 0.2, "0.2"), (10000.0, 2000.0, "10,000"), (-0.0, 5.0, "0"),
                                               (-20.0, 10.0, "-20"), (0.05, 0.05, "0.05")])
def test_tick_labels_show_the_steps_decimals(value, step, text):
    assert tick_label(value, step) == text


def test_text_is_escaped_and_parses_back():
    svg = Svg(100, 50)
    svg.text(1, 2, "a < b & 'c' > \"d\"")
    svg.rect(0, 0, 10, 10, "#000000", tip="<tip & more>")
    root = ET.fromstring(svg.render())
    assert root.find(f"{SVG}text").text == "a < b & 'c' > \"d\""
    assert root.find(f"{SVG}rect/{SVG}title").text == "<tip & more>"


def _qa(rows: int = ROWS, seed: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    actual = rng.integers(13, 95, rows).astype(float)
    pred = actual + rng.normal(0, 6, rows)
    half = 6 + pred / 20  # wider intervals for older people: the decile labels differ
    return {"actual": actual, "predicted": pred, "lower": pred - half, "upper": pred + half}


def _stages() -> list[StageRecord]:
    return [StageRecord("PreCleanup", "cleanup", "succeeded", 100.0, 100.4),
            StageRecord("Training", "fargate_task", "succeeded", 101.0, 130.0),
            StageRecord("EvaluationFeatures", "athena_ctas", "succeeded", 102.0, 110.0),  # beside Training
            StageRecord("HumanQA", "athena_ctas", "failed", 131.0, 133.5),
            StageRecord("FinalResults", "athena_ctas", "running", 134.0, None),  # open: ends with the run
            StageRecord("Cleanup", "cleanup")]  # never started: no bar


def _record(stages: list[StageRecord]) -> RunRecord:
    return RunRecord("local-test", "p.yaml", "s.parquet", "w", started=100.0, ended=140.0, stages=stages)


def _draw(folder: Path) -> list[tuple[str, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    return report._qa_charts(folder, _qa(), "age", 0.8) + report._timeline_chart(folder, _record(_stages()))


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("charts")
    _draw(folder)
    return folder


def _shapes(path: Path, cls: str) -> list[ET.Element]:
    return [r for r in ET.parse(path).getroot().iter(f"{SVG}rect") if r.get("class") == cls]


def _tip_rows(rect: ET.Element) -> int:
    return int(re.search(r"([\d,]+) (?:of [\d,]+ )?rows", rect.find(f"{SVG}title").text).group(1).replace(",", ""))


def _expected_cells() -> int:
    qa = _qa()
    lo, hi = min(qa["actual"].min(), qa["predicted"].min()), max(qa["actual"].max(), qa["predicted"].max())
    return int(np.count_nonzero(np.histogram2d(qa["actual"], qa["predicted"], bins=45, range=[[lo, hi]] * 2)[0]))


def _expected_inside() -> list[int]:
    qa = _qa()
    edges = np.quantile(qa["predicted"], np.linspace(0, 1, 11))
    decile = np.clip(np.searchsorted(edges, qa["predicted"], side="right") - 1, 0, 9)
    inside = (qa["actual"] >= qa["lower"]) & (qa["actual"] <= qa["upper"])
    return [int(inside[decile == d].sum()) for d in range(10)]


@pytest.mark.parametrize("name, cls, count, rows", [
    ("predicted_vs_actual.svg", "cell", _expected_cells(), ROWS),  # every row in exactly one cell
    ("residuals.svg", "bar", None, ROWS),  # the bars' counts add up to the residuals drawn
    ("interval_coverage.svg", "bar", 10, sum(_expected_inside())),
    ("stage_timeline.svg", "stage", 5, None),  # one bar per stage that started
])
def test_each_chart_has_shapes_tied_to_its_data(drawn, name, cls, count, rows):
    shapes = _shapes(drawn / name, cls)
    if count is not None:
        assert len(shapes) == count
    if rows is not None:
        assert sum(_tip_rows(r) for r in shapes) == rows


def test_histogram_bar_heights_are_proportional_to_their_counts(drawn):
    bars = _shapes(drawn / "residuals.svg", "bar")
    heights = np.array([float(b.get("height")) for b in bars])
    counts = np.array([_tip_rows(b) for b in bars])
    # One decimal per coordinate: within 0.2 px of the exact height.
    assert np.allclose(heights, counts * heights.max() / counts.max(), atol=0.2)
    assert sum(counts) == ROWS


def test_coverage_bars_count_the_rows_inside_each_decile(drawn):
    bars = _shapes(drawn / "interval_coverage.svg", "bar")
    assert [_tip_rows(b) for b in bars] == _expected_inside()
    labels = [t.text for t in ET.parse(drawn / "interval_coverage.svg").getroot().iter(f"{SVG}text")
              if t.text.startswith("±")]
    assert len(labels) == 10 and len(set(labels)) > 1  # the half-widths grow with the prediction


def test_timeline_bars_overlap_where_stages_ran_side_by_side(drawn):
    bars = {r.find(f"{SVG}title").text.split(":")[0]: r for r in _shapes(drawn / "stage_timeline.svg", "stage")}
    assert list(bars) == ["PreCleanup", "Training", "EvaluationFeatures", "HumanQA", "FinalResults"]
    span = {k: (float(r.get("x")), float(r.get("x")) + float(r.get("width"))) for k, r in bars.items()}
    assert span["EvaluationFeatures"][0] < span["Training"][1] and span["Training"][0] < span["EvaluationFeatures"][0]
    assert span["HumanQA"][0] >= span["Training"][1]
    fills = {k: r.get("fill") for k, r in bars.items()}
    assert fills["Training"] != fills["HumanQA"] != fills["FinalResults"] != fills["Training"]


def test_rows_without_a_prediction_are_left_out(tmp_path):
    qa = _qa()
    qa["predicted"] = np.ma.masked_array(qa["predicted"], mask=np.arange(ROWS) % 5 == 0)  # DuckDB's NULLs
    qa["upper"] = np.where(np.arange(ROWS) % 7 == 0, np.nan, qa["upper"])
    assert len(report._qa_charts(tmp_path, qa, "age", 0.8)) == 3
    for name, cls in [("predicted_vs_actual.svg", "cell"), ("residuals.svg", "bar")]:
        assert sum(_tip_rows(r) for r in _shapes(tmp_path / name, cls)) == ROWS - ROWS // 5, name


def test_same_input_gives_the_same_bytes(tmp_path, drawn):
    names = [n for n, _ in _draw(tmp_path / "again")]
    assert len(names) == 4
    for n in names:
        assert (tmp_path / "again" / n).read_bytes() == (drawn / n).read_bytes(), n


@pytest.mark.parametrize("qa, stages", [
    (None, []),  # no QA table, no stages
    ({"actual": np.array([]), "predicted": np.array([]), "lower": np.array([]), "upper": np.array([])},
     [StageRecord("Cleanup", "cleanup")]),  # no labelled rows; a stage that never started
    ({"actual": np.array([40.0]), "predicted": np.array([np.nan]), "lower": np.array([1.0]),
      "upper": np.array([2.0])}, []),  # no row with a prediction
])
def test_empty_inputs_draw_nothing(tmp_path, qa, stages):
    assert report._qa_charts(tmp_path, qa, "age", 0.8) == []
    assert report._timeline_chart(tmp_path, _record(stages)) == []
    assert list(tmp_path.iterdir()) == []


# --- report.html from a real QA table (Parquet written by DuckDB, read back by report.write)

def _lctx(tmp_path: Path, labelled: int):
    import duckdb

    from types import SimpleNamespace

    from stepkit.ir.context import Context
    from stepkit.local.source import PLACEHOLDERS
    from stepkit.compiler.load import load_pipeline

    pipeline, _ = load_pipeline(SMALL, dict(PLACEHOLDERS))
    ctx = Context(pipeline, SMALL, root=(tmp_path / "warehouse").as_posix() + "/")
    run_dir = tmp_path / "runs" / "local-test"
    run_dir.mkdir(parents=True)
    lctx = SimpleNamespace(compile=ctx, names=ctx.names, run_id="local-test", workdir=tmp_path, run_dir=run_dir,
                           config_path=run_dir / "config.json", engine=None, extra={})
    if labelled >= 0:
        loc = Path(ctx.names.table_location("human_qa", "local-test"))
        loc.mkdir(parents=True)
        # Half the rows have no known age: they are not drawn.
        duckdb.sql(
            f"COPY (SELECT i AS id, CASE WHEN i < {labelled} THEN 20 + i % 60 END AS known_age, "
            "20 + i % 60 + (i % 7) - 3 AS predicted_age, 20 + i % 60 - 5.0 AS lower_bound, "
            f"20 + i % 60 + 5.0 AS upper_bound FROM range({2 * max(labelled, 1)}) t(i)) "
            f"TO '{loc / 'part-0.parquet'}' (FORMAT parquet)")
    return lctx


@pytest.mark.parametrize("labelled, stages, charts", [
    (-1, [], []),  # no QA table, no stage started: no chart, no <img>
    (0, _stages(), ["stage_timeline.svg"]),  # a QA table without labelled rows
    (600, [], ["predicted_vs_actual.svg", "residuals.svg", "interval_coverage.svg"]),
    (600, _stages(), ["predicted_vs_actual.svg", "residuals.svg", "interval_coverage.svg", "stage_timeline.svg"]),
])
def test_report_html_shows_the_charts_it_has_and_no_broken_image(tmp_path, labelled, stages, charts):
    lctx = _lctx(tmp_path, labelled)
    path = report.write(lctx, _record(stages), lctx.run_dir)
    html = path.read_text()
    assert re.findall(r"<img src='([^']+)'", html) == charts
    assert sorted(p.name for p in lctx.run_dir.glob("*.svg")) == sorted(charts)
    if "predicted_vs_actual.svg" in charts:
        assert "600 labelled QA rows" in (lctx.run_dir / "predicted_vs_actual.svg").read_text()
