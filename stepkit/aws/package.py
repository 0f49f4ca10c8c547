"""What deploy uploads: stepkit's Lambda code (one zip for the cleanup and run-alerts functions, content-hash
key), the worker config, the template.

The zip is byte-for-byte reproducible (fixed timestamps and order), so an unchanged handler
gets the same key and an unchanged stack sees no change.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import stepkit

REPO = Path(stepkit.__file__).resolve().parent.parent
# Only what the handlers import: the Lambda runtime has boto3 but not pydantic or jinja2. Named
# by import path, as the Lambda imports them (the repository keeps stepkit.workers in workers/).
FUNCTION_FILES = ("stepkit/__init__.py", "stepkit/cleanup.py", "stepkit/workers/__init__.py",
                  "stepkit/workers/cleanup/__init__.py", "stepkit/workers/cleanup/handler.py",
                  "stepkit/workers/alerts/__init__.py", "stepkit/workers/alerts/handler.py")
EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Artifact:
    key: str  # S3 key under the pipeline's bucket
    body: bytes
    content_type: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.body).hexdigest()[:16]


def source(rel: str) -> Path:
    """The file of the module at import path `rel` (`a/b.py`, `a/__init__.py`), wherever it is
    installed: a checkout (editable install) or site-packages (a wheel)."""
    parts = rel.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    spec = importlib.util.find_spec(".".join(parts))
    if spec is None or not spec.origin:
        raise FileNotFoundError(f"{rel}: no module {'.'.join(parts)} installed")
    return Path(spec.origin)


def zip_files(files: tuple[str, ...]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in sorted(files):
            info = zipfile.ZipInfo(rel, date_time=EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, source(rel).read_bytes())
    return buf.getvalue()


def function_code(prefix: str) -> Artifact:
    body = zip_files(FUNCTION_FILES)
    digest = hashlib.sha256(body).hexdigest()[:16]
    return Artifact(f"{prefix}/stepkit/code/functions-{digest}.zip", body, "application/zip")


def template(prefix: str, stack: str, text: str) -> Artifact:
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Artifact(f"{prefix}/stepkit/templates/{stack}-{digest}.json", text.encode(), "application/json")


def template_url(bucket: str, region: str, key: str) -> str:
    # Templates over 51,200 bytes must come from S3 (the compiled definition alone is ~44 KB).
    return f"https://{bucket}.s3.{region}.amazonaws.com/{key}"
