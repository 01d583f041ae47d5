"""A cache of the revision graph, so most commands never import the revision files.

With ``trust_folders`` (the no-op check by default), a folder whose own signature and
whose head revisions' files are the ones cached is trusted without being listed. Otherwise
each version location (folder) is listed and every file in it is looked at with one
``stat()``. A folder whose listing (names, sizes, mtimes, ctimes, inodes) is exactly the
one cached, and whose newest ctime is well before the cache was written, is trusted as a
whole: its graph summary is used as it is and its per-file entries are not even read
from the cache file unless asked for. The kernel updates ctime on every write and no tool
can set it back, so an edit that keeps size and mtime is still seen. In any other folder
each file is checked on its own: trusted by the same rule, otherwise read and hashed, and
parsed again, with :mod:`ast`, only if its content changed. Revision files are never
executed here. A file whose identifiers are not plain literals is reported as ``None`` so
the caller imports it the usual way. A file that is no revision at all (``env.py``, or any
file that never assigns ``revision`` at its top level: other tools' files) is left out.
The cache lives in ``<script_location>/__pycache__``, where Python keeps its own caches,
and is replaced atomically; when it cannot be written (a read-only file system),
everything still works, only slower.

This module does not import Alembic.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any
from typing import TYPE_CHECKING

from ._collector import collector_paused
from .errors import ScriptDirectoryError

if TYPE_CHECKING:
    import ast

__all__ = [
    "CACHE_NAME",
    "CachedRevision",
    "FolderGraph",
    "RevisionFile",
    "Revisions",
    "holds_revisions",
    "is_foreign",
    "lockstep_function",
    "non_string_revision",
    "revision_ids",
    "scan",
]

#: The file, inside ``<script_location>/__pycache__``, holding the cache.
CACHE_NAME = "flask_alembic.revisions.json"
_FORMAT = 10
#: Files changed this close to the cache's writing are re-hashed (as git does).
_RACY_NS = 2_000_000_000
# The same files Alembic loads from a version location (its own rule for sources).
_SOURCE_FILE = re.compile(r"^(?!\.\#|__init__)(.*\.py)$")
_FIELDS = ("revision", "down_revision", "branch_labels", "depends_on")
#: A file that Alembic loads as the revision its name gives, when it sets no ``revision``
#: (``ScriptDirectory``'s legacy file names).
_LEGACY_NAME = re.compile(r"^[a-f0-9]+\.py$")
#: The cached form of a file that is no revision (see :func:`is_foreign`).
_FOREIGN = False
#: Files another tool keeps in the migrations folder, never revisions whatever they hold.


@dataclass(frozen=True, slots=True)
class CachedRevision:
    """What the graph needs of one revision file, read without importing it."""

    revision: str
    down_revision: tuple[str, ...]
    depends_on: tuple[str, ...]
    branch_labels: tuple[str, ...]
    #: The module docstring, as Python would see it.
    doc: str
    #: Whether running the file's top level again has no effect beyond its own module
    #: (see :func:`plain_module`): it may be imported to check it, let go of, and
    #: imported again when its step runs.
    plain: bool = False
    #: The top-level ``upgrade`` or ``downgrade`` written for a lockstep history (see
    #: :func:`lockstep_function`), or ``""``.
    lockstep: str = ""


class RevisionFile:
    """A revision file and, when it could be read statically, its revision data.

    Only the data is kept, not the cached JSON it came from: a long history's revision
    map keeps one per file for the whole command.
    """

    __slots__ = ("data", "path")

    def __init__(self, path: str, raw: list[Any] | bool | None) -> None:
        self.path = path
        #: The revision data, from the cached JSON form ``[revision, down_revisions,
        #: depends_on, branch_labels, doc]``; ``None`` when the file must be imported to
        #: know it.
        self.data = None if raw is None else _from_json(raw)


class FolderGraph:
    """What the no-op check needs of one folder's revisions, worked out when it changed."""

    __slots__ = ("depends_on", "external_downs", "heads", "ids")

    def __init__(
        self,
        ids: list[str],
        heads: list[str],
        external_downs: list[str],
        depends_on: list[str],
    ) -> None:
        #: Every revision id, in file order.
        self.ids = ids
        #: The ids no revision of this folder names as its ``down_revision``.
        self.heads = heads
        #: ``down_revision`` ids that are not in this folder.
        self.external_downs = external_downs
        #: Every ``depends_on`` token (an id, or a label the caller cannot resolve).
        self.depends_on = depends_on

    def to_json(self) -> dict[str, list[str]]:
        return {
            "ids": self.ids,
            "heads": self.heads,
            "external_downs": self.external_downs,
            "depends_on": self.depends_on,
        }

    @classmethod
    def from_json(cls, value: Any) -> FolderGraph:
        """Raises ``ValueError`` unless ``value`` is what :meth:`to_json` writes."""
        if type(value) is not dict:
            raise ValueError(value)
        fields: list[list[str]] = []
        for key in ("ids", "heads", "external_downs", "depends_on"):
            field = value.get(key)
            # The types of the items as a set: one pass in C over a long history's ids.
            if type(field) is not list or not set(map(type, field)) <= {str}:
                raise ValueError(value)
            fields.append(field)
        return cls(*fields)

    @classmethod
    def build(cls, raws: Iterable[list[Any] | bool | None]) -> FolderGraph | None:
        """The graph of these cached revisions; ``None`` if one must be imported."""
        ids: list[str] = []
        downs: set[str] = set()
        depends: set[str] = set()
        for raw in raws:
            if raw is None:
                return None
            if not isinstance(raw, list):  # a foreign file
                continue
            ids.append(raw[0])
            downs.update(raw[1])
            depends.update(raw[2])
        known = set(ids)
        return cls(
            ids,
            [rev for rev in ids if rev not in downs],
            sorted(downs - known),
            sorted(depends),
        )


class _Folder:
    """One version location as scanned: its listing, and its cached entries and graph."""

    __slots__ = ("entries", "graph", "listing", "name", "source", "trust_before")

    def __init__(
        self,
        name: str,
        listing: list[tuple[str, str, os.stat_result]] | None,
        graph: FolderGraph | None,
        *,
        entries: dict[str, list[Any]] | None = None,
        source: Callable[[], str | None] | None = None,
        trust_before: int = 0,
    ) -> None:
        self.name = name
        self.listing = listing
        self.graph = graph
        #: Entries by file name; ``None`` until read from :attr:`source` (their JSON text).
        self.entries = entries
        self.source = source
        self.trust_before = trust_before

    def files(self) -> list[RevisionFile]:
        entries = self.entries
        if self.listing is None:
            # Trusted by the folder's own signature: the cached entries are the listing.
            text = self.source() if self.source is not None else None
            cached = _decode(text)
            if cached:
                return [
                    RevisionFile(os.path.join(self.name, file), entry[2])
                    for file, entry in cached.items()
                    if type(entry) is list and len(entry) == 3 and entry[2] is not _FOREIGN
                ]
            # The cache file was replaced meanwhile: list and check the files after all.
            self.listing = _listing(self.name) or []
            entries = None
        if entries is None:
            # A trusted folder: its entries match the files, unless the cache was edited
            # by hand or replaced meanwhile; then the per-file check reads what differs.
            text = self.source() if self.source is not None else None
            entries, _ = _check_files(self.listing, _decode(text), self.trust_before, 0)
            self.entries = entries
        return [
            RevisionFile(path, entries[file][2])
            for file, path, _ in self.listing or ()
            if entries[file][2] is not _FOREIGN
        ]


class Revisions:
    """The revision files of the scanned folders, with what the cache knows of them."""

    __slots__ = ("_files", "_folders", "_graphs", "distinct", "trusted")

    def __init__(
        self, folders: list[_Folder], distinct: bool | None = None, *, trusted: bool = False
    ) -> None:
        self._folders = folders
        self._graphs = {folder.name: folder.graph for folder in folders}
        self._files: list[RevisionFile] | None = None
        #: Whether the revision ids of all these folders are distinct, ignoring case, as
        #: worked out when the cache was written for exactly these folders and files;
        #: ``None`` when unknown (no cache, or a folder whose graph needs an import).
        self.distinct = distinct
        #: Whether a folder was trusted by its own signature (``trust_folders``), without
        #: a look at each of its files: a file written over in place may be unseen.
        self.trusted = trusted

    def files(self) -> list[RevisionFile]:
        """Every revision file, sorted per folder, as Alembic lists them."""
        if self._files is None:
            with collector_paused():
                self._files = [item for folder in self._folders for item in folder.files()]
            # The listings and the cached entries (a stat result, a signature and a hash
            # per file) are not needed any more: freed, rather than kept for the command.
            self._folders = []
        return self._files

    def graphs(self) -> dict[str, FolderGraph | None]:
        """Each folder's graph (as given to :func:`scan`); ``None`` where a file is dynamic."""
        return dict(self._graphs)


def scan(
    locations: Iterable[Path], cache_dir: Path | None, *, trust_folders: bool = False
) -> Revisions:
    """List the revision files in ``locations`` and read what the cache knows of them.

    With ``trust_folders``, a folder whose own signature (modification time, change time,
    inode) is the one cached, and old enough, and whose head revisions' files (the
    revisions no other file of the folder follows) have the signatures cached, is trusted
    without listing or looking at its other files: adding, removing or renaming a file
    changes the folder's signature, and writing over a head's file changes that file's,
    but writing over another file in place (the same name) is not seen.
    """
    with collector_paused():
        return _scan(locations, cache_dir, trust_folders)


def _cached_graph(record: dict[str, Any]) -> tuple[FolderGraph | None] | None:
    """A trusted folder's graph summary from its cache record, in a 1-tuple (the summary
    itself may be ``None``: a folder without revisions); ``None`` when it does not parse
    (edited by hand)."""
    summary = record.get("graph")
    try:
        return (None if summary is None else FolderGraph.from_json(summary),)
    except ValueError:
        return None


def _listing(name: str) -> list[tuple[str, str, os.stat_result]] | None:
    """The revision-file candidates of folder ``name`` with their stats, by name."""
    found = _listing_and_links(name)
    return None if found is None else found[0]


def _listing_and_links(name: str) -> tuple[list[tuple[str, str, os.stat_result]], bool] | None:
    """:func:`_listing`, and whether a candidate is a symbolic link: the file it reaches
    can be replaced without a change to this folder, which is then never trusted whole."""
    try:
        found = [
            entry
            for entry in os.scandir(name)
            if _SOURCE_FILE.match(entry.name) and entry.is_file()
        ]
        listing = [(entry.name, entry.path, entry.stat()) for entry in found]
    except (FileNotFoundError, NotADirectoryError):
        return None
    listing.sort(key=itemgetter(0))  # by name, as Alembic lists them
    return listing, any(entry.is_symlink() for entry in found)


def _heads_unchanged(name: str, heads: Any, trust_before: int) -> bool:
    """Whether each head file of a folder's record still has its cached signature, and
    had it well before the cache was written."""
    if type(heads) is not list:
        return False
    for item in heads:
        try:
            file, cached = item
            stat = os.stat(os.path.join(name, file))
        except (OSError, TypeError, ValueError):
            return False
        signature = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        if signature != cached or stat.st_ctime_ns >= trust_before:
            return False
    return True


def _head_files(
    listing: list[tuple[str, str, os.stat_result]],
    entries: dict[str, list[Any]],
    graph: FolderGraph | None,
) -> list[list[Any]]:
    """The files of the folder's head revisions, with their stat signatures."""
    if graph is None:
        return []
    heads = set(graph.heads)
    return [
        [file, entries[file][0]]
        for file, _, _ in listing
        if type(entries[file][2]) is list and entries[file][2][0] in heads
    ]


def _folder_signature(name: str) -> list[int] | None:
    try:
        stat = os.stat(name)
    except OSError:
        return None
    return [stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def _unsettled(
    record: dict[str, Any], signature: list[int], trust_before: int, settled: int
) -> bool:
    """Whether writing the cache again would let the next run trust the folder whole: its
    signature is new, or was too recent for the cache and is old enough now."""
    return record.get("folder") != signature or trust_before <= signature[1] < settled


def _scan(locations: Iterable[Path], cache_dir: Path | None, trust_folders: bool) -> Revisions:
    cache_file = cache_dir / CACHE_NAME if cache_dir is not None else None
    old, written_ns, tail, distinct = _read(cache_file)
    # Like git's index: a stat signature is trusted only if the file's ctime is well
    # before the cache was written, so that a change made in the same instant as the
    # cache is not mistaken for the cached state.
    trust_before = written_ns - _RACY_NS
    settled = time.time_ns() - _RACY_NS
    new: dict[str, dict[str, Any]] = {}
    folders: list[_Folder] = []
    write = False
    trusted_whole = False
    for location in locations:
        name = str(location)
        record = old.get(name)
        if type(record) is not dict:
            record = {}
        line = record.get("files")
        if type(line) is not int:
            line = -1
        # Taken before the listing: a file added while listing changes it after, and the
        # next run then checks the folder again. Recorded whatever the check, so that a
        # command that checks every file leaves a cache the next no-op can trust.
        signature = _folder_signature(name)
        if (
            trust_folders
            and signature is not None
            and record.get("folder") == signature
            and signature[1] < trust_before
            and line >= 0
            and _heads_unchanged(name, record.get("head_files"), trust_before)
        ):
            trusted = _cached_graph(record)
            if trusted is not None:  # else edited by hand: check file by file below
                source = functools.partial(tail.line, line)
                folders.append(
                    _Folder(name, None, trusted[0], source=source, trust_before=trust_before)
                )
                new[name] = {**record, "files": source}
                trusted_whole = True
                continue
        found = _listing_and_links(name)
        if found is None:
            continue
        listing, links = found
        if links:
            signature = None  # a link's file can change without the folder: never trusted
        fingerprint = _fingerprint(listing)
        newest = max((stat.st_ctime_ns for _, _, stat in listing), default=0)
        if record.get("fingerprint") == fingerprint and line >= 0 and newest < trust_before:
            trusted = _cached_graph(record)
            if trusted is not None:  # else edited by hand: check file by file below
                source = functools.partial(tail.line, line)
                folders.append(
                    _Folder(name, listing, trusted[0], source=source, trust_before=trust_before)
                )
                new[name] = {**record, "files": source}
                if new[name].pop("folder", None) is not None and signature is None:
                    write = True  # a link appeared: the folder's signature is not enough
                if signature is not None:
                    new[name]["folder"] = signature
                    # Written again so that the next run trusts the folder as a whole.
                    write = write or _unsettled(record, signature, trust_before, settled)
                continue
        text = tail.line(line)
        entries, refresh = _check_files(listing, _decode(text), trust_before, settled)
        graph = FolderGraph.build(entries[file][2] for file, _, _ in listing)
        new[name] = {
            "fingerprint": fingerprint,
            "graph": None if graph is None else graph.to_json(),
            "head_files": _head_files(listing, entries, graph),
            "files": json.dumps(entries, separators=(",", ":")),
        }
        if signature is not None:
            new[name]["folder"] = signature
            refresh = refresh or _unsettled(record, signature, trust_before, settled)
        write = write or refresh or new[name] != {**record, "files": text}
        folders.append(_Folder(name, listing, graph, entries=entries))
    if cache_file is None:
        return Revisions(folders)
    if write or new.keys() != old.keys() or distinct is None:
        known = _distinct(new)
        # A cache written before it knew whether the ids are distinct is written again
        # once, so that later runs know.
        if write or new.keys() != old.keys() or known is not None:
            _write(cache_file, new, known)
        distinct = known
    return Revisions(folders, distinct, trusted=trusted_whole)


def _distinct(folders: dict[str, dict[str, Any]]) -> bool | None:
    """Whether the ids of every folder's graph are distinct, ignoring case (``None`` when a
    folder has no graph)."""
    seen: set[str] = set()
    count = 0
    for record in folders.values():
        graph = record.get("graph")
        if graph is None:
            return None
        seen.update(rev_id.lower() for rev_id in graph["ids"])
        count += len(graph["ids"])
    return len(seen) == count


def holds_revisions(location: Path) -> bool:
    """Whether ``location`` holds a revision file: one assigning ``revision`` and
    ``down_revision`` at its top level (read, never imported; other files do not count)."""
    try:
        listing = os.scandir(location)
    except (FileNotFoundError, NotADirectoryError):
        return False
    with listing:
        # Usually the first file answers: the rest of the listing is not read.
        return any(
            _assigns_revision(entry.path)
            for entry in listing
            if _SOURCE_FILE.match(entry.name) and entry.is_file()
        )


def is_foreign(path: Path) -> bool:
    """Whether ``path`` is a file of another tool, never a revision: a Python file that
    parses and cannot bind ``revision`` when it runs (``env.py``, a helper module; read
    with :mod:`ast`, never imported). Its name does not matter: a revision file named
    ``env.py`` is a revision. A file that does not parse is not foreign: importing it
    reports its error."""
    try:
        source = path.read_bytes()
    except OSError:
        return False
    return _foreign(path.name, source)


def _foreign(name: str, source: bytes) -> bool:
    import ast

    if _LEGACY_NAME.match(name):
        return False  # Alembic takes its revision id from the file's name
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    return not _binds_revision(tree)


def _top_level_names(tree: ast.Module) -> set[str]:
    """The names a module may bind when it runs, wherever at module level: assignments of
    any form (``revision, down_revision = ...``, inside ``if``, ``try``, ``with``, loops),
    imports, functions and classes; ``"*"`` for a star import, which may bind any name.

    Function and class bodies are not searched: their names are not the module's. More
    names than the module really binds is the safe error: such a file is loaded the way
    Alembic loads it, never skipped.
    """
    import ast

    names: set[str] = set()
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                names.add("*" if alias.name == "*" else (alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store):
                names.add(node.id)
        elif not isinstance(node, ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))
    return names


def _binds_revision(tree: ast.Module) -> bool:
    """Whether running the module may bind ``revision`` (see :func:`_top_level_names`)."""
    names = _top_level_names(tree)
    return "revision" in names or "*" in names


def lockstep_function(source: str | bytes) -> str | None:
    """The name of the top-level ``upgrade`` or ``downgrade`` of ``source`` that takes a
    positional argument (even one with a default: ``upgrade(engine_name="")`` called with
    none would run only one database's part) or a required one, as in a lockstep history
    for several databases (Flask-Migrate ``--multidb``, Alembic's ``multidb`` template,
    Flask-Alembic 3): ``upgrade(engine_name)`` dispatching to ``upgrade_<bind>()``.
    ``None`` when there is none or ``source`` does not parse. Read with :mod:`ast`, never
    run."""
    import ast

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    return _lockstep_function(tree)


def _lockstep_function(tree: ast.Module) -> str | None:
    import ast

    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in {
            "upgrade",
            "downgrade",
        }:
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            if positional or any(default is None for default in args.kw_defaults):
                return node.name
    return None


def _assigns_revision(path: str) -> bool:
    """Whether the file at ``path`` assigns ``revision`` and ``down_revision``."""
    import ast

    try:
        with open(path, "rb") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError, ValueError):
        return False
    wanted = {"revision", "down_revision"}
    # The usual file says it in plain top-level assignments: told without the full walk
    # (names found so are names the walk finds too).
    plain = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    return wanted <= plain or wanted <= _top_level_names(tree)


def _decode(text: str | None) -> dict[str, Any]:
    """A folder's cached entries from their JSON text; empty if missing or damaged."""
    try:
        entries = json.loads(text) if text is not None else {}
    except ValueError:
        return {}
    return entries if type(entries) is dict else {}


def _fingerprint(listing: list[tuple[str, str, os.stat_result]]) -> str:
    """A digest of every file's name, size, mtime, ctime and inode.

    The numbers go through Python's hash of a tuple of ints, which is fixed by the language
    for a given version (unlike the hash of a string) and runs in C: formatting thousands
    of big integers as text would cost more than the rest of a scan. Another Python version
    may hash differently, which costs one run that checks every file.
    """
    names = "/".join([name for name, _, _ in listing])
    numbers = hash(
        tuple([(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino) for _, _, st in listing])
    )
    digest = hashlib.blake2b(names.encode("utf-8", "surrogateescape"), digest_size=16)
    return f"{digest.hexdigest()}:{numbers & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def _check_files(
    listing: list[tuple[str, str, os.stat_result]],
    cached: dict[str, Any],
    trust_before: int,
    settled: int,
) -> tuple[dict[str, list[Any]], bool]:
    """Each file's entry, trusted, re-hashed or parsed again.

    Also says whether a file was re-hashed only for being too recent when the cache was
    written and is old enough now: writing the cache again lets the next run trust it.
    """
    entries: dict[str, list[Any]] = {}
    refresh = False
    for file, path, stat in listing:
        signature = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        entry = cached.get(file)
        if type(entry) is not list or len(entry) != 3 or not _valid_raw(entry[2]):
            entry = None
        elif entry[0] == signature and stat.st_ctime_ns < trust_before:
            entries[file] = entry
            continue
        with open(path, "rb") as handle:
            source = handle.read()
        digest = _digest(source)
        if entry is not None and entry[1] == digest:
            raw = entry[2]
            refresh = refresh or stat.st_ctime_ns < settled
        else:
            raw = _read_source(file, source)
        entries[file] = [signature, digest, raw]
    return entries, refresh


def _valid_raw(raw: Any) -> bool:
    """Whether a cached revision is ``None``, foreign, or the list :func:`_to_json` makes."""
    if raw is None or raw is _FOREIGN:
        return True
    if type(raw) is not list or len(raw) != 7:
        return False
    revision, down_revision, depends_on, branch_labels, doc, plain, lockstep = raw
    return (
        type(revision) is str
        and type(doc) is str
        and type(plain) is bool
        and type(lockstep) is str
        and all(
            type(ids) is list and all(type(item) is str for item in ids)
            for ids in (down_revision, depends_on, branch_labels)
        )
    )


def _digest(source: bytes) -> str:
    return hashlib.blake2b(source, digest_size=16).hexdigest()


def _read_source(name: str, source: bytes) -> list[Any] | bool | None:
    """A file's cached form: its revision data, ``None`` if it must be imported to know
    them, or :data:`_FOREIGN` if it is no revision (see :func:`is_foreign`)."""
    import ast  # only files that changed are parsed

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None  # importing it will report the error properly
    if not _binds_revision(tree):
        # A legacy file named by its id (``1a2b3c.py``): Alembic loads it as that
        # revision, so it is imported the usual way; any other file is another tool's.
        return None if _LEGACY_NAME.match(name) else _FOREIGN
    return _to_json(_parse(tree))


def _parse(tree: ast.Module) -> CachedRevision | None:
    """Read the revision identifiers and docstring; ``None`` unless all are literals."""
    import ast

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
            down_revision=revision_ids(values["down_revision"]),
            depends_on=revision_ids(values.get("depends_on")),
            branch_labels=revision_ids(values.get("branch_labels")),
            doc=ast.get_docstring(tree, clean=False) or "",
            plain=plain_module(tree),
            lockstep=_lockstep_function(tree) or "",
        )
    except TypeError:
        return None


def plain_module(tree: ast.Module) -> bool:
    """Whether the module's top level only imports, assigns literals (annotated with
    names, attributes and subscripts, as ``str | Sequence[str] | None``), and defines
    undecorated functions whose defaults are literals: running it again creates a new
    module and changes nothing else (imports come from ``sys.modules``). A class, a call,
    a decorator, a condition or a loop makes it not plain, as do names bound by ``global``
    statements in its functions, a ``__getattr__`` and star imports (which could run
    anything)."""
    import ast

    def literal(node: ast.expr | None) -> bool:
        if node is None:
            return True
        try:
            ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return False
        return True

    # What a typing annotation is made of: evaluating it has no effect.
    typing = (
        ast.Name,
        ast.Attribute,
        ast.Subscript,
        ast.Tuple,
        ast.List,
        ast.BinOp,
        ast.BitOr,
        ast.Constant,
        ast.Load,
    )

    def annotation(node: ast.expr) -> bool:
        return all(isinstance(part, typing) for part in ast.walk(node))

    for index, node in enumerate(tree.body):
        if isinstance(node, ast.Expr):
            if not (index == 0 and isinstance(node.value, ast.Constant)):
                return False  # a call, or any expression but the docstring
        elif isinstance(node, ast.Import):
            continue
        elif isinstance(node, ast.ImportFrom):
            if any(alias.name == "*" for alias in node.names):
                return False
        elif isinstance(node, ast.Assign):
            if not all(isinstance(t, ast.Name) for t in node.targets) or not literal(node.value):
                return False
        elif isinstance(node, ast.AnnAssign):
            if not isinstance(node.target, ast.Name) or not literal(node.value):
                return False
            if not annotation(node.annotation):
                return False
        elif isinstance(node, ast.FunctionDef):
            arguments = node.args
            if node.decorator_list or (node.returns is not None and not annotation(node.returns)):
                return False
            defaults = [*arguments.defaults, *arguments.kw_defaults]
            if not all(literal(d) for d in defaults):
                return False
            arguments_annotated = [
                a.annotation
                for a in (
                    *arguments.posonlyargs,
                    *arguments.args,
                    *arguments.kwonlyargs,
                    *(x for x in (arguments.vararg, arguments.kwarg) if x is not None),
                )
                if a.annotation is not None
            ]
            if not all(annotation(a) for a in arguments_annotated):
                return False
            if node.name == "__getattr__" or any(
                isinstance(inner, ast.Global | ast.Nonlocal) for inner in ast.walk(node)
            ):
                return False
        else:
            return False
    return True


def revision_ids(value: Any) -> tuple[str, ...]:
    """``down_revision``, ``branch_labels`` or ``depends_on`` as a tuple of ids; ``TypeError``
    unless it is ``None``, a string or a list or tuple of strings."""
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
        data.plain,
        data.lockstep,
    ]


def _from_json(data: Any) -> CachedRevision | None:
    if type(data) is not list or len(data) != 7:
        return None
    revision, down_revision, depends_on, branch_labels, doc, plain, lockstep = data
    try:
        return CachedRevision(
            revision=revision,
            down_revision=tuple(down_revision),
            depends_on=tuple(depends_on),
            branch_labels=tuple(branch_labels),
            doc=doc,
            plain=plain is True,
            lockstep=lockstep if type(lockstep) is str else "",
        )
    except TypeError:
        return None


class _Tail:
    """The cache file's lines after the header, read only when a folder's entries are needed.

    A run that trusts every folder reads the header alone. The rest is read later from the
    same file, checked by inode, size and mtime to be the one the header came from: if
    another process replaced it meanwhile, no line is returned, and the caller checks
    each file itself.
    """

    __slots__ = ("_identity", "_lines", "_offset", "_path")

    def __init__(self, path: Path | None, offset: int = 0, identity: tuple[int, ...] = ()) -> None:
        self._path = path
        self._offset = offset
        self._identity = identity
        self._lines: list[str] | None = None if path is not None else []

    def line(self, number: int) -> str | None:
        """Line ``number`` after the header (0 for the first), or ``None``."""
        if number < 0:
            return None
        lines = self._lines
        if lines is None:
            lines = self._lines = []
            assert self._path is not None
            try:
                with open(self._path, "rb") as handle:
                    if _identity(os.fstat(handle.fileno())) == self._identity:
                        handle.seek(self._offset)
                        lines = self._lines = handle.read().decode("utf-8").split("\n")
            except (OSError, UnicodeDecodeError):
                pass
        return lines[number] if number < len(lines) else None


def _identity(stat: os.stat_result) -> tuple[int, ...]:
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _read(path: Path | None) -> tuple[dict[str, Any], int, _Tail, bool | None]:
    """The cached folder records, when they were written, and the rest of the file.

    The file is JSON lines: a header ``{"format", "written_ns", "folders", "distinct"}``,
    where each folder's record ``{"fingerprint", "graph", "folder", "head_files",
    "files"}`` gives as ``files`` the number of the line, after the header, that holds its
    files' entries (as ``{file name: [[size, mtime_ns, ctime_ns, inode], content hash,
    data]}``); ``folder`` is the folder's own signature and ``head_files`` the signature
    of each head revision's file. An unusable file reads as no cache at all.
    """
    if path is None:
        return {}, 0, _Tail(None), None
    try:
        with open(path, "rb") as handle:
            identity = _identity(os.fstat(handle.fileno()))
            header = handle.readline()
        content = json.loads(header)
    except (OSError, ValueError):
        return {}, 0, _Tail(None), None
    if not isinstance(content, dict) or content.get("format") != _FORMAT:
        return {}, 0, _Tail(None), None
    folders = content.get("folders")
    written = content.get("written_ns")
    if not isinstance(folders, dict) or not isinstance(written, int):
        return {}, 0, _Tail(None), None
    distinct = content.get("distinct")
    if type(distinct) is not bool:
        distinct = None
    return folders, written, _Tail(path, len(header), identity), distinct


def _write(path: Path, folders: dict[str, dict[str, Any]], distinct: bool | None) -> None:
    """Replace the cache atomically; give up quietly if the folder is not writable."""
    import tempfile

    try:
        path.parent.mkdir(exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".flask_alembic.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                # mkstemp makes the file private: let whoever may read the revisions read
                # it too (Python gives its bytecode the mode of the source file likewise).
                if hasattr(os, "fchmod"):  # not on Windows before Python 3.13
                    os.fchmod(fd, path.parent.parent.stat().st_mode & 0o666)
                lines: list[str] = []
                header: dict[str, Any] = {}
                for folder, record in folders.items():
                    text = record["files"]
                    if callable(text):  # a trusted folder's entries, still unread
                        text = text()
                    if text is None:
                        continue  # the old file was replaced meanwhile: rebuild next time
                    header[folder] = {**record, "files": len(lines)}
                    lines.append(text)
                content = {
                    "format": _FORMAT,
                    "written_ns": time.time_ns(),
                    "folders": header,
                    "distinct": distinct,
                }
                handle.write(json.dumps(content, separators=(",", ":")))
                for line in lines:
                    handle.write("\n")
                    handle.write(line)
            os.replace(temp, path)
        except BaseException:
            os.unlink(temp)
            raise
    except OSError:
        pass


def non_string_revision(path: Path) -> ScriptDirectoryError | None:
    """The error for ``path`` if its ``revision`` is a literal that is not a string.

    Alembic fails on such a file with a ``TypeError`` that names no file. The file is read
    with :mod:`ast`, never run.
    """
    import ast

    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "revision" for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and not isinstance(node.value.value, str)
        ):
            return ScriptDirectoryError(
                f"Revision file {path} has revision = {node.value.value!r}: it must be a "
                "revision id string.",
                path=str(path),
                hint="Fix the file, for example revision = 'a1b2c3d4e5f6'.",
            )
    return None
