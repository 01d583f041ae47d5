"""A cache of the revision graph, so most commands never import the revision files.

A file is trusted unchanged only when its size, mtime, ctime and inode all match and its
ctime is older than the cache itself (the kernel updates ctime on every write, and no
tool can set it back); otherwise it is read and hashed, and parsed again, with
:mod:`ast`, only if its content changed. Revision files are never executed here.
A file whose identifiers are not plain literals is reported as ``None`` so the caller
imports it the usual way. The cache lives in ``<script_location>/__pycache__``, where
Python keeps its own caches, and is replaced atomically; when it cannot be written
(a read-only file system), everything still works, only slower.

This module does not import Alembic.
"""

from __future__ import annotations

import gc
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CACHE_NAME", "CachedRevision", "RevisionFile", "scan"]

#: The file, inside ``<script_location>/__pycache__``, holding the cache.
CACHE_NAME = "flask_alembic.revisions.json"
_FORMAT = 3
#: Files changed this close to the cache's writing are re-hashed (as git does).
_RACY_NS = 2_000_000_000
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


class RevisionFile:
    """A revision file and, when it could be read statically, its revision data."""

    __slots__ = ("_data", "folder", "path", "raw")

    def __init__(self, folder: str, path: str, raw: list[Any] | None) -> None:
        #: The version location holding the file, as it was given to :func:`scan`.
        self.folder = folder
        self.path = path
        #: The cached JSON form of :attr:`data`, ``[revision, down_revisions, depends_on,
        #: branch_labels, doc]`` (read by the fast paths as is).
        self.raw = raw
        self._data: CachedRevision | None = None

    @property
    def data(self) -> CachedRevision | None:
        """The revision data; ``None`` when the file must be imported to know it."""
        if self._data is None and self.raw is not None:
            self._data = _from_json(self.raw)
        return self._data


def scan(locations: Iterable[Path], cache_dir: Path | None) -> list[RevisionFile]:
    """Every revision file in ``locations`` (sorted per folder, as Alembic lists them)."""
    # Thousands of small acyclic containers: nothing for the garbage collector to find.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _scan(locations, cache_dir)
    finally:
        if enabled:
            gc.enable()


def _scan(locations: Iterable[Path], cache_dir: Path | None) -> list[RevisionFile]:
    # The cache file: {"format", "written_ns", "locations": {folder: {file name: entry}}},
    # an entry being [[size, mtime_ns, ctime_ns, inode], content hash, data or null].
    cache_file = cache_dir / CACHE_NAME if cache_dir is not None else None
    old, written_ns = _read(cache_file)
    # Like git's index: a file's stat signature is trusted only if its ctime is well
    # before the cache was written. ctime changes on every write and cannot be set back,
    # so an edit that keeps size and mtime is still seen; a recent file is re-hashed.
    trust_before = written_ns - _RACY_NS
    settled = time.time_ns() - _RACY_NS
    new: dict[str, dict[str, list[Any]]] = {}
    result: list[RevisionFile] = []
    # Re-hashed only for being too recent when the cache was written, but old enough now:
    # writing the cache again lets the next run trust them.
    refresh = False
    for location in locations:
        folder = str(location)
        try:
            entries = sorted(
                (entry.name, entry.path, entry.stat())
                for entry in os.scandir(folder)
                if _SOURCE_FILE.match(entry.name) and entry.is_file()
            )
        except (FileNotFoundError, NotADirectoryError):
            continue
        cached = old.get(folder)
        if not isinstance(cached, dict):
            cached = {}
        kept = new.setdefault(folder, {})
        for name, path, stat in entries:
            signature = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
            entry = cached.get(name)
            if type(entry) is not list or len(entry) != 3:
                entry = None
            elif entry[0] == signature and stat.st_ctime_ns < trust_before:
                kept[name] = entry
                result.append(RevisionFile(folder, path, entry[2]))
                continue
            with open(path, "rb") as handle:
                source = handle.read()
            digest = _digest(source)
            if entry is not None and entry[1] == digest:
                raw = entry[2]
                refresh = refresh or stat.st_ctime_ns < settled
            else:
                raw = _to_json(_parse(source))
            kept[name] = [signature, digest, raw]
            result.append(RevisionFile(folder, path, raw))
    if cache_file is not None and (refresh or new != old):
        _write(cache_file, new)
    return result


def _digest(source: bytes) -> str:
    import hashlib  # only files that changed are hashed

    return hashlib.blake2b(source, digest_size=16).hexdigest()


def _parse(source: bytes) -> CachedRevision | None:
    """Read the revision identifiers and docstring; ``None`` unless all are literals."""
    import ast  # only files that changed are parsed

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


def _to_json(data: CachedRevision | None) -> list[Any] | None:
    """The JSON form, with lists where JSON has them, so an unchanged cache compares equal."""
    if data is None:
        return None
    return [
        data.revision,
        list(data.down_revision),
        list(data.depends_on),
        list(data.branch_labels),
        data.doc,
    ]


def _from_json(data: Any) -> CachedRevision | None:
    if type(data) is not list or len(data) != 5:
        return None
    revision, down_revision, depends_on, branch_labels, doc = data
    try:
        return CachedRevision(
            revision=revision,
            down_revision=tuple(down_revision),
            depends_on=tuple(depends_on),
            branch_labels=tuple(branch_labels),
            doc=doc,
        )
    except TypeError:
        return None


def _read(path: Path | None) -> tuple[dict[str, Any], int]:
    """The cached entries and when they were written (0 when there is no usable cache)."""
    if path is None:
        return {}, 0
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, 0
    if not isinstance(content, dict) or content.get("format") != _FORMAT:
        return {}, 0
    locations = content.get("locations")
    written = content.get("written_ns")
    if not isinstance(locations, dict) or not isinstance(written, int):
        return {}, 0
    return locations, written


def _write(path: Path, locations: dict[str, dict[str, list[Any]]]) -> None:
    """Replace the cache atomically; give up quietly if the folder is not writable."""
    import tempfile

    try:
        path.parent.mkdir(exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".flask_alembic.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                # mkstemp makes the file private: let whoever may read the revisions read
                # it too (Python gives its bytecode the mode of the source file likewise).
                os.fchmod(fd, path.parent.parent.stat().st_mode & 0o666)
                json.dump(
                    {"format": _FORMAT, "written_ns": time.time_ns(), "locations": locations},
                    handle,
                    separators=(",", ":"),
                )
            os.replace(temp, path)
        except BaseException:
            os.unlink(temp)
            raise
    except OSError:
        pass
