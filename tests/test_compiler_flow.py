"""The data flow between stages (stepkit/compiler/flow.py): what may run side by side, and what no
stage provides. Structure cases are hand-built flows; the refusals are edits of the shipped pipeline."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from stepkit.cli import main
from stepkit.compiler import flow
from stepkit.steps.base import Flow

ROOT = Path(__file__).resolve().parents[1]
GOOD = (ROOT / "pipelines" / "predict_age.yaml").read_text()
ENV = str(ROOT / "pipelines" / "example.env")


def F(reads="", writes="", defines="", deletes="", barrier=False) -> Flow:
    return Flow(frozenset(reads.split()), frozenset(writes.split()), frozenset(defines.split()),
                frozenset(deletes.split()), barrier)


def show(node, names) -> str:
    if isinstance(node, int):
        return names[node]
    if isinstance(node, flow.Series):
        return " > ".join(show(p, names) for p in node.parts)
    return "{" + " | ".join(show(b, names) for b in node.branches) + "}"


PREDICT_AGE = [
    ("PreCleanup", F(deletes="staging tf tt ef predictions", barrier=True)),
    ("Staging", F(writes="staging")),
    ("TF", F(reads="staging", writes="tf")),
    ("TT", F(reads="staging", writes="tt")),
    ("Training", F(reads="tf tt", writes="model")),
    ("EF", F(reads="staging", writes="ef")),
    ("BatchIds", F(writes="$batch_ids")),
    ("Table", F(defines="predictions")),
    ("Map", F(reads="ef model $batch_ids", writes="predictions")),
    ("QA", F(reads="staging predictions", writes="qa")),
    ("Final", F(reads="staging predictions", writes="final")),
    ("Wait", F(barrier=True)),
    ("Cleanup", F(deletes="staging tf tt ef", barrier=True)),
]

# (case, [(name, flow)], expected shape)
STRUCTURES = [
    ("a chain stays a chain", [("A", F(writes="a")), ("B", F(reads="a", writes="b")), ("C", F(reads="b"))],
     "A > B > C"),
    ("independent stages become branches", [("A", F(writes="a")), ("B", F(writes="b")), ("C", F(writes="c"))],
     "{A | B | C}"),
    ("fork after a shared input, join at the reader of both",
     [("S", F(writes="s")), ("A", F(reads="s", writes="a")), ("B", F(reads="s", writes="b")),
      ("J", F(reads="a b"))], "S > {A | B} > J"),
    ("a barrier orders everything around it", [("A", F(writes="a")), ("W", F(barrier=True)), ("B", F(writes="b"))],
     "A > W > B"),
    ("two writers of one table keep the spec's order", [("A", F(writes="t")), ("B", F(writes="t"))], "A > B"),
    ("a reader never passes the stage that deletes its table",
     [("A", F(reads="t")), ("D", F(deletes="t")), ("B", F(writes="u"))], "{A > D | B}"),
    ("declarations go first, outside any branch",
     [("A", F(writes="a")), ("Ids", F(writes="$ids")), ("B", F(writes="b")), ("M", F(reads="a b $ids"))],
     "Ids > {A | B} > M"),
    ("the predict-age pipeline", PREDICT_AGE,
     "PreCleanup > BatchIds > Table > Staging > {{TF | TT} > Training | EF} > Map > {QA | Final} > Wait > Cleanup"),
]


@pytest.mark.parametrize("case,stages,expected", STRUCTURES, ids=[c[0] for c in STRUCTURES])
def test_structure(case, stages, expected):
    names = [n for n, _ in stages]
    assert show(flow.structure([f for _, f in stages]), names) == expected


def _respects_dependencies(node, before, done: set[int]) -> set[int]:
    """Walk the shape as it would run; every stage's ancestors must have finished first."""
    if isinstance(node, int):
        assert before[node] <= done, f"stage {node} starts before {before[node] - done}"
        return done | {node}
    if isinstance(node, flow.Series):
        for part in node.parts:
            done = _respects_dependencies(part, before, done)
        return done
    ends = [_respects_dependencies(b, before, done) for b in node.branches]
    return set().union(*ends)


@pytest.mark.parametrize("case,stages,expected", STRUCTURES, ids=[c[0] for c in STRUCTURES])
def test_structure_never_runs_a_stage_before_what_it_needs(case, stages, expected):
    flows = [f for _, f in stages]
    done = _respects_dependencies(flow.structure(flows), flow.ancestors(flows), set())
    assert done == set(range(len(flows)))  # and every stage runs once


# (case, old text, new text, the stage whose line the message points at, words)
REFUSALS = [
    ("no training stage: nothing writes the model",
     re.search(r"  - name: Training\n(?:    .*\n)+", GOOD)[0], "", "ParallelPrediction",
     "reads 'model', which no earlier stage writes"),
    ("no fan-out: the predictions table is declared but never filled",
     re.search(r"  - name: ParallelPrediction\n(?:    .*\n)+", GOOD)[0], "", "HumanQA",
     "reads 'predictions', a table CreatePredictionsTable declares but no earlier stage fills with data"),
    ("a cleanup before the stage that reads what it deleted",
     "  - name: FinalResults\n", "  - name: DropEarly\n    type: cleanup\n    delete_data: [staging]\n"
     "  - name: FinalResults\n", "FinalResults", "reads 'staging', which stage DropEarly deletes before it"),
    ("a task reading what nothing writes", "    reads: [training_features, training_targets]\n",
     "    reads: [training_features, training_targetz]\n", "Training",
     "reads 'training_targetz', which no earlier stage writes"),
]


@pytest.mark.parametrize("case,old,new,stage,words", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_a_stage_reading_what_no_earlier_stage_writes_is_refused(tmp_path, case, old, new, stage, words):
    assert GOOD.count(old) == 1
    text = GOOD.replace(old, new)
    path = tmp_path / "p.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["validate", str(path), "--env-file", ENV])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [x for x in result.stderr.splitlines() if words in x]
    assert lines, result.stderr
    # Located at the stage: its `reads:` line (tasks) or its `template:` line (SQL).
    start = text.index(f"  - name: {stage}\n")
    field_at = min(i for i in (text.find("    reads:", start), text.find("    template:", start)) if i > 0)
    line = text.count("\n", 0, field_at) + 1
    assert lines[0].startswith(f"{path}:{line}:"), (lines[0], line)
