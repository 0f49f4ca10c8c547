"""Compiled output of each pipeline, byte for byte, against tests/golden/<pipeline>/.

The golden folders are exactly what `stepkit compile pipelines/<p>.yaml --env-file
pipelines/example.env --out tests/golden/<p>` writes: every file, none missing, none extra.
After an intended change, regenerate and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_compiler_golden.py
"""
from __future__ import annotations

import difflib
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from stepkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
PIPELINES = ["predict_age", "predict_income", "classify_homeowner", "classify_seniority", "predict_profile",
             "etl_device_activity", "rescore_age"]
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", PIPELINES)
def test_compiled_output_matches_golden(name, tmp_path):
    # Relative paths, as in the docstring's command, so the files are what a user gets.
    result = CliRunner().invoke(main, ["compile", f"pipelines/{name}.yaml", "--env-file", "pipelines/example.env",
                                       "--out", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    got = tree(tmp_path)
    golden = GOLDEN / name
    if UPDATE:
        shutil.rmtree(golden, ignore_errors=True)
        shutil.copytree(tmp_path, golden)
    want = tree(golden)
    assert sorted(got) == sorted(want), "files written differ from the golden folder"
    for rel in sorted(got):
        if got[rel] != want[rel]:
            diff = "".join(difflib.unified_diff(want[rel].splitlines(True), got[rel].splitlines(True),
                                                f"golden/{name}/{rel}", f"compiled/{rel}", n=2))
            pytest.fail(f"{rel} differs from golden (UPDATE_GOLDEN=1 to accept):\n{diff[:4000]}")


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)
