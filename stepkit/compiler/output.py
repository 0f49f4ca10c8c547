"""`stepkit compile --out DIR`: write the compiled files, and never touch a file compile did not write.

DIR holds a manifest (MANIFEST) of the files compile wrote there. A compile writes into an empty
(or new) folder, or into one with a manifest; it overwrites and removes only files the manifest
lists, and refuses a non-empty folder without one, a path where a file of someone else's would be
overwritten, and folders no compile output belongs in (/, the home folder, a repository's root, a
folder holding the pipeline file), also when reached through symlinks. The manifest is written
before any other file (listing what this compile may write as well as what the last one wrote), so
an interrupted compile leaves a folder the next one accepts and cleans up.
"""
from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

from stepkit.errors import StepkitError

MANIFEST = ".stepkit-compile.json"
_NOTE = ("The files `stepkit compile` wrote in this folder. A later compile overwrites these and removes "
         "those it no longer writes; it touches nothing else.")


def write(out_dir: Path, files: dict[str, str], pipeline: Path) -> list[Path]:
    """Write `files` (relative path -> text) under out_dir; return their paths. Files an earlier
    compile wrote and this one does not are removed. A StepkitError (one line) when refused."""
    _refuse_special(out_dir, pipeline)
    previous = _previous(out_dir)
    root = out_dir.resolve()
    for rel in files:
        path = out_dir / rel
        _inside(root, path, out_dir, rel)
        if rel not in previous and (path.exists() or path.is_symlink()):
            raise StepkitError(f"{out_dir}: {rel} exists and was not written by stepkit compile; it would be "
                               "overwritten: move it, or choose another --out")
    stale = sorted(previous - set(files))
    for rel in stale:
        _inside(root, out_dir / rel, out_dir, rel)
    out_dir.mkdir(parents=True, exist_ok=True)
    # First: everything this compile may write or leave, so no interruption orphans a file.
    _write_file(out_dir / MANIFEST, _manifest(previous | set(files)))
    written = []
    for rel, text in files.items():
        path = out_dir / rel
        written.append(path)
        _write_file(path, text)
    for rel in stale:
        path = out_dir / rel
        if path.is_file() or path.is_symlink():
            path.unlink()
        _remove_empty_parents(path.parent, out_dir)
    for rel in previous | set(files):
        tmp = out_dir / (rel + ".tmp")  # left by an interrupted compile's write
        if tmp.is_file():
            tmp.unlink()
    _write_file(out_dir / MANIFEST, _manifest(set(files)))
    return written


def _refuse_special(out_dir: Path, pipeline: Path) -> None:
    where = out_dir.resolve()
    why = None
    if where == Path(where.anchor):
        why = "is the file system's root"
    elif where == _home():
        why = "is your home folder"
    elif where in Path(pipeline).resolve().parents:
        why = f"holds the pipeline file {pipeline}"
    elif (where / ".git").exists():
        why = "is a repository's root"
    if why:
        resolved = f" ({where})" if str(where) != str(out_dir) else ""
        raise StepkitError(f"--out {out_dir}{resolved} {why}: compile writes sql/, iam/ and more there; "
                           "choose a folder of its own, such as out/<pipeline>")
    if out_dir.exists() and not out_dir.is_dir():
        raise StepkitError(f"--out {out_dir}: not a folder")


def _home() -> Path | None:
    try:
        return Path.home().resolve()
    except (RuntimeError, KeyError):  # no home folder
        return None


def _previous(out_dir: Path) -> set[str]:
    """What the last compile into out_dir wrote; empty for a new or empty folder; refused otherwise."""
    if not out_dir.is_dir():
        return set()
    manifest = out_dir / MANIFEST
    if not manifest.exists():
        if any(out_dir.iterdir()):
            raise StepkitError(f"--out {out_dir}: the folder is not empty and no stepkit compile wrote it (no "
                               f"{MANIFEST}); compile writes only into an empty folder or its own, so it never "
                               "overwrites or deletes your files: choose another --out, or empty it")
        return set()
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        listed = data["files"]
        if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
            raise ValueError
    except (OSError, ValueError, KeyError, TypeError):
        raise StepkitError(f"{manifest}: not a manifest stepkit compile wrote (expected JSON with a \"files\" "
                           "list); remove the folder's compiled files and the manifest, or choose another --out") \
            from None
    for rel in listed:
        parts = PurePosixPath(rel).parts
        if not rel or PurePosixPath(rel).is_absolute() or any(p in ("", ".", "..") for p in parts) \
                or rel != PurePosixPath(rel).as_posix() or rel == MANIFEST:
            raise StepkitError(f"{manifest}: lists {rel!r}, not a path inside the folder; compile removes only "
                               "files inside it: fix or remove the manifest")
    return set(listed)


def _inside(root: Path, path: Path, out_dir: Path, rel: str) -> None:
    """Through symlinked folders a path may lead out of out_dir: refused."""
    if root not in path.resolve().parents:
        raise StepkitError(f"{out_dir}: {rel} leads to {path.resolve()}, outside the folder (a symlink); "
                           "compile writes and removes files only inside it")


def _manifest(files: set[str]) -> str:
    return json.dumps({"note": _NOTE, "files": sorted(files)}, indent=2) + "\n"


def _write_file(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    # A file that already holds this content is left alone: its mtime stays (make, rsync),
    # and the rename below is the slowest step of a compile that changes nothing.
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary name and rename: an interrupted compile leaves no half file.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _remove_empty_parents(folder: Path, out_dir: Path) -> None:
    """Folders a removed file leaves empty (a removed role's iam/), up to out_dir itself."""
    while folder != out_dir and out_dir in folder.parents:
        try:
            os.rmdir(folder)
        except OSError:
            return  # not empty, or already gone
        folder = folder.parent
