"""predict_age.yaml with a few fields changed, written next to the test (tables of variants)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.aws.conftest import PIPELINE


def write_variant(tmp_path: Path, changes: dict[str, Any], name: str = "variant.yaml") -> Path:
    """`changes` maps dotted paths (`compute.tasks.prediction.memory_gb`) to values; `stages+` appends."""
    data = yaml.safe_load(PIPELINE.read_text())
    for path, value in changes.items():
        if path == "stages+":
            data["stages"].insert(-1, value)
            continue
        *parents, leaf = path.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    out = tmp_path / name
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def compile_variant(tmp_path: Path, variables: dict[str, str], changes: dict[str, Any], name: str = "variant.yaml"):
    from stepkit.compiler.build import compile_file

    return compile_file(write_variant(tmp_path, changes, name), variables)
