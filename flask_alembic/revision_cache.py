"""A cache of the revision graph, so most commands never import the revision files.

Each revision file is read and hashed on every run (never trusted by size or mtime);
only the files whose content changed are parsed again, with :mod:`ast`, never executed.
A file whose identifiers are not plain literals is reported as ``None`` so the caller
imports it the usual way. The cache lives in ``<script_location>/__pycache__``, where
Python keeps its own caches, and is replaced atomically; when it cannot be written
(a read-only file system), everything still works, only slower.

This module does not import Alembic.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CACHE_NAME", "CachedRevision", "RevisionFile", "scan"]

#: The file, inside ``<script_location>/__pycache__``, holding the cache.
CACHE_NAME = "flask_alembic.revisions.json"
_FORMAT = 1
# The same files Alembic loads from a version location (its own rule for sources).
_SOURCE_FILE = re.compile(r"^(?!\.\#|__init__)(.*\.py)$")
_FIELDS = ("revision", "down_revision", "branch_labels", "depends_on")


@dataclass(frozen=True)
class CachedRevision:
    """What the graph needs of one revision file, read without importing it."""

    revision: str
    down_revision: tuple[str, ...]
    depends_on: tuple[str, ...]
    branch_labels: tuple[str, ...]
    #: The module docstring, as Python would see it.
    doc: str


@dataclass(frozen=True)
class RevisionFile:
    """A revision file and, when it could be read statically, its revision data."""

    path: Path
    data: CachedRevision | None


def scan(locations: Iterable[Path], cache_dir: Path | None) -> list[RevisionFile]:
    """Every revision file in ``locations`` (sorted per folder, as Alembic lists them)."""
    cache_file = cache_dir / CACHE_NAME if cache_dir is not None else None
    old = _read(cache_file)
    new: dict[str, dict[str, Any]] = {}
    result: list[RevisionFile] = []
    for location in locations:
        if not location.is_dir():
            continue
        for name in sorted(os.listdir(location)):
            if not _SOURCE_FILE.match(name):
                continue
            path = location / name
            if not path.is_file():
                continue
            source = path.read_bytes()
            digest = hashlib.blake2b(source, digest_size=16).hexdigest()
            entry = old.get(str(path))
            if entry is not None and entry.get("hash") == digest:
                data = _from_json(entry.get("data"))
            else:
                data = _parse(source)
            new[str(path)] = {"hash": digest, "data": None if data is None else asdict(data)}
            result.append(RevisionFile(path, data))
    if cache_file is not None and new != old:
        _write(cache_file, new)
    return result


def _parse(source: bytes) -> CachedRevision | None:
    """Read the revision identifiers and docstring; ``None`` unless all are literals."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None  # importing it will report the error properly
    values: dict[str, Any] = {}
    for node in tree.body:
        targets: list[ast.expr]
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in _FIELDS:
                if target.id in values:
                    return None  # assigned twice: only running the module can tell
                try:
                    values[target.id] = ast.literal_eval(value)
                except ValueError:
                    return None
    revision = values.get("revision")
    if not isinstance(revision, str) or "down_revision" not in values:
        return None
    try:
        return CachedRevision(
            revision=revision,
            down_revision=_ids(values["down_revision"]),
            depends_on=_ids(values.get("depends_on")),
            branch_labels=_ids(values.get("branch_labels")),
            doc=ast.get_docstring(tree, clean=False) or "",
        )
    except TypeError:
        return None


def _ids(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise TypeError(value)


def _from_json(data: Any) -> CachedRevision | None:
    if not isinstance(data, dict):
        return None
    try:
        return CachedRevision(
            revision=data["revision"],
            down_revision=tuple(data["down_revision"]),
            depends_on=tuple(data["depends_on"]),
            branch_labels=tuple(data["branch_labels"]),
            doc=data["doc"],
        )
    except (KeyError, TypeError):
        return None


def _read(path: Path | None) -> dict[str, dict[str, Any]]:
    if path is None:
        return {}
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(content, dict) or content.get("format") != _FORMAT:
        return {}
    files = content.get("files")
    return files if isinstance(files, dict) else {}


def _write(path: Path, files: dict[str, dict[str, Any]]) -> None:
    """Replace the cache atomically; give up quietly if the folder is not writable."""
    try:
        path.parent.mkdir(exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".flask_alembic.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"format": _FORMAT, "files": files}, handle)
            os.replace(temp, path)
        except BaseException:
            os.unlink(temp)
            raise
    except OSError:
        pass
