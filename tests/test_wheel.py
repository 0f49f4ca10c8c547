"""The library as a wheel: built from what the worker Dockerfiles copy, installed into a clean venv
outside the repository, it compiles the shipped pipelines byte for byte as the editable install
does, holds every module and SQL template, and installs no import name but `stepkit`.

Nothing is downloaded: the wheel is built with the test environment's setuptools (no build
isolation), and the clean venv reaches the runtime dependencies through a .pth line naming the
test environment's site-packages (a plain path line: the editable install's own .pth hook there
is not run, so the only `stepkit` the venv sees is the wheel's).
"""
from __future__ import annotations

import filecmp
import os
import re
import shutil
import site
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests._local_runs import once, shared_dir

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted(ROOT.glob("workers/*/Dockerfile"))
PIPELINES = ["predict_age", "predict_income"]
# Where the repository keeps what the wheel installs elsewhere (pyproject.toml [tool.setuptools]).
MAPPED = {"stepkit": "stepkit", "workers": "stepkit/workers", "templates/sql": "stepkit/templates/sql"}


def _copies(dockerfile: Path) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context (not --from a stage)."""
    out = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            out.append((words[1:-1], words[-1]))
    return out


def _into_src(dockerfile: Path) -> dict[str, str]:
    """Repository path -> its place under /src/, for the COPYs that make the image's /src."""
    placed = {}
    for sources, dest in _copies(dockerfile):
        if dest.startswith("/src"):
            for s in sources:
                placed[s] = dest + Path(s).name if dest.endswith("/") else dest
    return placed


def _build(folder: Path) -> dict[str, object]:
    """Build the wheel from the Dockerfiles' /src, install it into a clean venv; returns the paths."""
    started = time.perf_counter()
    src = folder / "src"
    for rel, dest in _into_src(DOCKERFILES[0]).items():
        target = src / dest.removeprefix("/src/")
        if (ROOT / rel).is_dir():
            shutil.copytree(ROOT / rel, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, target)
    dist = folder / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
                            "--no-index", "-q", "-w", str(dist)], cwd=src, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel, = dist.glob("stepkit-*.whl")
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib, = venv.glob("lib/python*/site-packages")
    (purelib / "test-deps.pth").write_text("".join(f"{p}\n" for p in site.getsitepackages()))
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                                "--no-deps", "--no-index", "-q", str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return {"wheel": str(wheel), "venv": str(venv), "seconds": round(time.perf_counter() - started, 1)}


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> dict[str, object]:
    return once(shared_dir(tmp_path_factory), "wheel", _build)


def _names(wheel: str) -> list[str]:
    return zipfile.ZipFile(wheel).namelist()


def test_wheel_installs_no_import_name_but_stepkit(built):
    names = _names(built["wheel"])
    top_level, = [n for n in names if n.endswith(".dist-info/top_level.txt")]
    assert zipfile.ZipFile(built["wheel"]).read(top_level).decode().split() == ["stepkit"]
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"stepkit"}


@pytest.mark.parametrize("folder, pattern", [("stepkit", "**/*.py"), ("workers", "**/*.py"),
                                             ("templates/sql", "**/*.j2")])
def test_wheel_holds_every_module_and_template(built, folder, pattern):
    names = set(_names(built["wheel"]))
    files = [p.relative_to(ROOT / folder).as_posix() for p in (ROOT / folder).glob(pattern)
             if "__pycache__" not in p.parts]
    assert files
    missing = sorted(f"{folder}/{f}" for f in files if f"{MAPPED[folder]}/{f}" not in names)
    assert not missing, f"not in the wheel: {missing}; add their package to [tool.setuptools] packages in pyproject.toml"


def _compile(stepkit: Path, cwd: Path, pipeline: str, out: Path) -> None:
    env = {**os.environ, "STEPKIT_NO_CACHE": "1"}  # nothing shared between the two installs' runs
    done = subprocess.run([str(stepkit), "compile", f"pipelines/{pipeline}.yaml", "--out", str(out),
                           "--env-file", "pipelines/example.env"], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_wheel_compiles_the_shipped_pipelines_as_the_editable_install_does(built, tmp_path, pipeline):
    venv = Path(built["venv"])
    probe = "import importlib.util, stepkit; print(stepkit.__file__, importlib.util.find_spec('workers'))"
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    purelib, = venv.glob("lib/python*/site-packages")
    assert probe.stdout.split() == [str(purelib / "stepkit" / "__init__.py"), "None"], probe.stderr  # the wheel's, only
    work = tmp_path / "elsewhere"  # a folder outside the repository, with a copy of the pipelines
    shutil.copytree(ROOT / "pipelines", work / "pipelines")
    _compile(Path(sys.executable).with_name("stepkit"), work, pipeline, tmp_path / "editable")
    _compile(venv / "bin" / "stepkit", work, pipeline, tmp_path / "wheel")
    editable, wheel = _tree(tmp_path / "editable"), _tree(tmp_path / "wheel")
    assert any(k.startswith("sql/") for k in wheel)  # the templates were found and rendered
    assert sorted(wheel) == sorted(editable)
    assert [k for k in editable if wheel[k] != editable[k]] == []
    assert filecmp.dircmp(tmp_path / "editable", tmp_path / "wheel").diff_files == []


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=[d.parent.name for d in DOCKERFILES])
def test_dockerfile_copies_what_exists_and_its_entrypoint_runs_from_the_wheel(built, dockerfile, tmp_path):
    """No Docker engine here: the image's build steps are checked by their parts. Every COPY names
    a file of the repository; the RUN lines use only what the COPYs put there; /src is what the
    wheel above was built from (both images copy the same); the ENTRYPOINT module runs installed."""
    text = dockerfile.read_text()
    copies = _copies(dockerfile)
    assert [s for sources, _ in copies for s in sources if not (ROOT / s).exists()] == []
    destinations = [d for _, d in copies]
    for path in re.findall(r"(?:^|\s)(/(?:src|tmp)\S*)", "\n".join(l for l in text.splitlines() if l.startswith("RUN"))):
        assert any(path.rstrip("/").startswith(d.rstrip("/")) for d in destinations), f"RUN uses {path}, never copied"
    assert _into_src(dockerfile) == _into_src(DOCKERFILES[0])
    module, = re.findall(r'^ENTRYPOINT \["python", "-m", "([\w.]+)"\]$', text, re.M)
    assert module == f"stepkit.workers.{dockerfile.parent.name}"
    done = subprocess.run([str(Path(built["venv"]) / "bin" / "python"), "-m", module, "--help"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert " ".join(done.stdout.split()).startswith(f"usage: python -m {module} [-h] --config CONFIG --run-id RUN_ID")
