"""The speed-ups change nothing: the background SQL check gives the in-process verdicts, and the
on-disk template cache never serves a stale or broken template."""
from __future__ import annotations

import pytest

from stepkit.compiler import jinja_cache, sql, sqlcheck

STATEMENTS = [
    ("one select", "SELECT 1 AS x", None),
    ("ctas", "CREATE TABLE d.t WITH (format = 'PARQUET') AS SELECT 1 AS x", None),
    ("two statements", "SELECT 1; SELECT 2", "holds 2 statements"),
    ("syntax error", "SELECT FROM WHERE (", "does not parse as Athena SQL"),
    ("unbalanced quote", "SELECT 'x", "does not parse as Athena SQL"),
]


def verdicts(checker: sqlcheck.InProcess) -> list[str | None]:
    for _, text, _ in STATEMENTS:
        checker.submit(text)
    return checker.results()


def test_background_gives_the_in_process_verdicts():
    here = verdicts(sqlcheck.InProcess())
    with sqlcheck.Background() as child:
        assert child._proc is not None, "the child did not start"
        there = verdicts(child)
    assert there == here
    for (case, _, words), got in zip(STATEMENTS, here):
        assert (got is None) if words is None else (words in got), case


def test_background_falls_back_when_the_child_dies():
    with sqlcheck.Background() as child:
        child._proc.kill()
        child._proc.wait()
        assert verdicts(child) == verdicts(sqlcheck.InProcess())


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("STEPKIT_NO_CACHE", raising=False)
    sql.environment.cache_clear()
    yield tmp_path
    sql.environment.cache_clear()


def render(folder, name="t.sql.j2", **ctx) -> str:
    sql.environment.cache_clear()  # a new process, as far as Jinja's in-memory cache goes
    return sql.render(name, ctx, [str(folder)], "test")


def test_cache_is_used_and_follows_template_changes(cache_home):
    templates = cache_home / "templates"
    templates.mkdir()
    (templates / "t.sql.j2").write_text("SELECT {{ x }} AS a\n")
    assert render(templates, x=1) == "SELECT 1 AS a\n"
    entries = list((cache_home / "cache" / "stepkit").rglob("*.cache"))
    assert len(entries) == 1
    assert render(templates, x=2) == "SELECT 2 AS a\n"  # from the cache
    (templates / "t.sql.j2").write_text("SELECT {{ x }} AS b\n")
    assert render(templates, x=3) == "SELECT 3 AS b\n"  # changed source: recompiled


def test_broken_cache_entry_is_recompiled(cache_home):
    templates = cache_home / "templates"
    templates.mkdir()
    (templates / "t.sql.j2").write_text("SELECT {{ x }} AS a\n")
    render(templates, x=1)
    (entry,) = (cache_home / "cache" / "stepkit").rglob("*.cache")
    entry.write_bytes(entry.read_bytes()[:40])  # truncated, as by a crash mid-write
    assert render(templates, x=5) == "SELECT 5 AS a\n"


def test_cache_folder_depends_on_settings_and_can_be_off(cache_home, monkeypatch):
    a = jinja_cache.folder({"trim_blocks": True})
    assert a != jinja_cache.folder({"trim_blocks": False})
    monkeypatch.setenv("STEPKIT_NO_CACHE", "1")
    assert jinja_cache.folder({"trim_blocks": True}) is None
