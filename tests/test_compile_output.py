"""`stepkit compile --out DIR` writes into an empty folder or its own (a manifest lists what it wrote),
removes only what an earlier compile wrote, and refuses folders no compile output belongs in."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from stepkit.cli import main
from stepkit.compiler.output import MANIFEST

ROOT = Path(__file__).resolve().parents[1]
ENV = str(ROOT / "pipelines" / "example.env")
PIPELINE = ROOT / "pipelines" / "predict_age.yaml"
USER_FILES = {"sql/report.sql": "SELECT 1\n", "iam/admin.json": '{"Action": "*"}\n', "notes.txt": "mine\n"}


def compile_(out: Path | str, pipeline: Path = PIPELINE, env: dict | None = None):
    return CliRunner().invoke(main, ["compile", str(pipeline), "--env-file", ENV, "--out", str(out)], env=env,
                              catch_exceptions=False)


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def put(folder: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)


def _foreign(tmp: Path) -> Path:
    out = tmp / "out"
    put(out, USER_FILES)
    return out


def _bad_manifest(listed) -> callable:
    def make(tmp: Path) -> Path:
        out = tmp / "out"
        put(out, {MANIFEST: json.dumps({"files": listed}), "keep.txt": "mine\n"})
        (tmp / "outside.txt").write_text("mine\n")
        return out
    return make


def _symlinked_subfolder(tmp: Path) -> Path:
    out = tmp / "out"
    assert compile_(out).exit_code == 0
    shutil.rmtree(out / "sql")
    (tmp / "elsewhere").mkdir()
    put(tmp / "elsewhere", {"report.sql": "SELECT 1\n"})
    (out / "sql").symlink_to(tmp / "elsewhere")
    return out


def _user_file_where_compile_writes(tmp: Path) -> Path:
    out = tmp / "out"
    renamed = tmp / "renamed.yaml"
    renamed.write_text(PIPELINE.read_text().replace("  - name: HumanQA\n", "  - name: HumanReview\n"))
    assert compile_(out, renamed).exit_code == 0
    put(out, {"sql/HumanQA.sql": "-- my own query\n"})  # compiling predict_age writes this name
    return out


def _home(tmp: Path) -> Path:
    home = tmp / "home"
    home.mkdir()
    return home


def _link_to_home(tmp: Path) -> Path:
    (tmp / "link").symlink_to(_home(tmp))
    return tmp / "link"


def _repository(tmp: Path) -> Path:
    put(tmp / "repo", {".git/HEAD": "ref: refs/heads/main\n"})
    return tmp / "repo"


# (case, make the --out folder from tmp, words of the one-line refusal)
REFUSED = [
    ("a user's non-empty folder", _foreign, "the folder is not empty and no stepkit compile wrote it"),
    ("a manifest naming a path outside the folder", _bad_manifest(["../outside.txt"]), "not a path inside the folder"),
    ("a manifest naming an absolute path", _bad_manifest(["/etc/hostname"]), "not a path inside the folder"),
    ("a manifest that is not one", _bad_manifest("everything"), "not a manifest stepkit compile wrote"),
    ("a symlinked sub-folder leading out", _symlinked_subfolder, "outside the folder (a symlink)"),
    ("a user's file where compile would write", _user_file_where_compile_writes,
     "sql/HumanQA.sql exists and was not written by stepkit compile"),
    ("the file system's root", lambda tmp: Path("/"), "is the file system's root"),
    ("the home folder", _home, "is your home folder"),
    ("a symlink to the home folder", _link_to_home, "is your home folder"),
    ("the repository holding the pipeline", lambda tmp: ROOT, "holds the pipeline file"),
    ("the pipeline's own folder", lambda tmp: ROOT / "pipelines", "holds the pipeline file"),
    ("a repository's root", _repository, "is a repository's root"),
]


@pytest.mark.parametrize("case, make, words", REFUSED, ids=[c[0] for c in REFUSED])
def test_compile_refuses_and_touches_nothing(tmp_path, case, make, words):
    out = make(tmp_path)
    watched = tmp_path if not str(out).startswith(str(ROOT)) and out != Path("/") else out / "pipelines"
    before = tree(watched)
    result = compile_(out, env={"HOME": str(tmp_path / "home"), "STEPKIT_NO_CACHE": "1"})
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and "warning" in lines[0], lines  # the spec's fan-out quota warning, then the refusal
    assert words in lines[1] and str(out) in lines[1]
    assert tree(watched) == before


def test_compile_keeps_the_users_files_in_its_own_folder(tmp_path):
    out = tmp_path / "out"
    assert compile_(out).exit_code == 0
    put(out, USER_FILES)
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(PIPELINE.read_text().replace("  - name: HumanQA\n", "  - name: HumanReview\n"))
    assert compile_(out, renamed).exit_code == 0
    got = tree(out)
    assert {rel: got[rel].decode() for rel in USER_FILES} == USER_FILES
    assert "sql/HumanQA.sql" not in got and "sql/HumanReview.sql" in got
    manifest = json.loads(got[MANIFEST])
    assert manifest["files"] == sorted(set(got) - set(USER_FILES) - {MANIFEST})


def test_an_interrupted_compile_is_finished_by_the_next(tmp_path, monkeypatch):
    """The manifest is written first: files of a compile stopped halfway are its own, not foreign."""
    from stepkit.compiler import output

    out = tmp_path / "out"
    calls = []
    real = output._write_file

    def stop_at_the_fourth(path, text):
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt
        real(path, text)

    monkeypatch.setattr(output, "_write_file", stop_at_the_fourth)
    result = compile_(out)
    assert result.exit_code == 130
    monkeypatch.setattr(output, "_write_file", real)
    assert compile_(out).exit_code == 0
    fresh = tmp_path / "fresh"
    assert compile_(fresh).exit_code == 0
    assert tree(out) == tree(fresh)


def test_compile_into_a_new_or_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new" / "nested"):
        assert compile_(out).exit_code == 0
        assert (out / MANIFEST).is_file() and (out / "statemachine.asl.json").is_file()
    assert tree(tmp_path / "empty") == tree(tmp_path / "new" / "nested")
    assert os.listdir(tmp_path / "empty") != []
