"""The speed-ups change nothing: the background SQL check and the remembered verdicts give the
in-process verdicts, and the on-disk template cache never serves a stale or broken template."""
from __future__ import annotations

import pytest

from stepkit.compiler import sqlcheck
from stepkit.ir import jinja_cache, sql

STATEMENTS = [
    ("one select", "SELECT 1 AS x", None),
    ("ctas", "CREATE TABLE d.t WITH (format = 'PARQUET') AS SELECT 1 AS x", None),
    ("two statements", "SELECT 1; SELECT 2", "holds 2 statements"),
    ("syntax error", "SELECT FROM WHERE (", "does not parse as Athena SQL"),
    ("unbalanced quote", "SELECT 'x", "does not parse as Athena SQL"),
]


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("STEPKIT_NO_CACHE", raising=False)
    sql.environment.cache_clear()
    yield tmp_path
    sql.environment.cache_clear()


@pytest.fixture
def parses(monkeypatch) -> list[str]:
    """Texts that `check()` really parsed in this process."""
    seen: list[str] = []
    real = sqlcheck.check
    monkeypatch.setattr(sqlcheck, "check", lambda text: seen.append(text) or real(text))
    return seen


def verdicts(checker: sqlcheck.InProcess, statements=STATEMENTS) -> list[str | None]:
    for _, text, _ in statements:
        checker.submit(text)
    return checker.results()


def expected_ok(got: list[str | None]) -> None:
    for (case, _, words), verdict in zip(STATEMENTS, got):
        assert (verdict is None) if words is None else (words in verdict), case


def test_in_process_verdicts(cache_home):
    expected_ok(verdicts(sqlcheck.InProcess()))


def test_background_gives_the_in_process_verdicts(cache_home, monkeypatch):
    monkeypatch.setenv("STEPKIT_NO_CACHE", "1")
    here = verdicts(sqlcheck.InProcess())
    with sqlcheck.Background("p.yaml") as child:
        assert child._proc is not None, "the child did not start"
        there = verdicts(child)
    assert there == here


def test_background_falls_back_when_the_child_dies(cache_home, monkeypatch):
    monkeypatch.setenv("STEPKIT_NO_CACHE", "1")
    with sqlcheck.Background("p.yaml") as child:
        child._proc.kill()
        child._proc.wait()
        expected_ok(verdicts(child))


def test_passes_are_remembered_failures_are_not(cache_home, parses):
    expected_ok(verdicts(sqlcheck.InProcess()))
    assert len(parses) == 5
    parses.clear()
    expected_ok(verdicts(sqlcheck.InProcess()))  # a later compile
    assert parses == [text for _, text, words in STATEMENTS if words is not None]


def test_no_cache_parses_everything(cache_home, parses, monkeypatch):
    verdicts(sqlcheck.InProcess())
    monkeypatch.setenv("STEPKIT_NO_CACHE", "1")
    parses.clear()
    expected_ok(verdicts(sqlcheck.InProcess()))
    assert len(parses) == 5


def test_a_compile_whose_sql_was_all_checked_starts_no_child(cache_home):
    good = [s for s in STATEMENTS if s[2] is None]
    with sqlcheck.Background("p.yaml") as first:
        assert verdicts(first, good) == [None, None]
    with sqlcheck.Background("p.yaml") as second:
        assert second._proc is None  # nothing to parse expected
        assert verdicts(second, good) == [None, None]
    with sqlcheck.Background("p.yaml") as third:
        assert third._proc is None
        third.submit("SELECT 2 AS y")  # new SQL after all: a child is started for it
        assert third._proc is not None
        third.submit("SELECT FROM")
        out = third.results()
    assert out[0] is None and "does not parse" in out[1]


def render(folder, name="t.sql.j2", **ctx) -> str:
    sql.environment.cache_clear()  # a new process, as far as Jinja's in-memory cache goes
    return sql.render(name, ctx, [str(folder)], "test")


def test_template_cache_is_used_and_follows_changes(cache_home):
    templates = cache_home / "templates"
    templates.mkdir()
    (templates / "t.sql.j2").write_text("SELECT {{ x }} AS a\n")
    assert render(templates, x=1) == "SELECT 1 AS a\n"
    entries = list((cache_home / "cache" / "stepkit").glob("jinja-*/*.cache"))
    assert len(entries) == 1
    assert render(templates, x=2) == "SELECT 2 AS a\n"  # from the cache
    (templates / "t.sql.j2").write_text("SELECT {{ x }} AS b\n")
    assert render(templates, x=3) == "SELECT 3 AS b\n"  # changed source: recompiled


def test_broken_template_cache_entry_is_recompiled(cache_home):
    templates = cache_home / "templates"
    templates.mkdir()
    (templates / "t.sql.j2").write_text("SELECT {{ x }} AS a\n")
    render(templates, x=1)
    (entry,) = (cache_home / "cache" / "stepkit").glob("jinja-*/*.cache")
    entry.write_bytes(entry.read_bytes()[:40])  # truncated, as by a crash mid-write
    assert render(templates, x=5) == "SELECT 5 AS a\n"


def test_cache_folder_depends_on_settings_and_can_be_off(cache_home, monkeypatch):
    a = jinja_cache.folder({"trim_blocks": True})
    assert a != jinja_cache.folder({"trim_blocks": False})
    monkeypatch.setenv("STEPKIT_NO_CACHE", "1")
    assert jinja_cache.folder({"trim_blocks": True}) is None
