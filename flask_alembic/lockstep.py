"""Converting a lockstep history into one history per bind: pure file work.

A lockstep history (Flask-Migrate's ``--multidb``, Flask-Alembic 3 with several databases)
keeps one file per revision whose ``upgrade(engine_name)`` calls ``upgrade_<name>()`` for
each database, and every database records the same revision id. Here each such file
becomes one file per bind, in this package's template form, with the old function bodies,
imports, helper code and comments kept as they were written. Files are read with
:mod:`ast`, never imported; nothing here touches a database or imports Alembic.
"""

from __future__ import annotations

import ast
import contextlib
import filecmp
import hashlib
import io
import json
import os
import tokenize
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from pathlib import PurePosixPath

from . import config
from .errors import Command
from .errors import RevisionError
from .errors import ScriptDirectoryError
from .revision_cache import lockstep_function
from .revision_cache import revision_ids

__all__ = [
    "ARCHIVE_NAME",
    "ID_MAP_NAME",
    "JOURNAL_NAME",
    "BindTarget",
    "Conversion",
    "NewFile",
    "apply_conversion",
    "derived_id",
    "find_lockstep",
    "is_lockstep_file",
    "plan_conversion",
    "recover",
]

#: The folder, inside the script location, that keeps the old files. Its leading dot
#: means no bind's folder is ever given this name (see ``registry.bind_directory_name``),
#: and Alembic scans only the version locations themselves, not their subfolders.
ARCHIVE_NAME = ".lockstep-archive"
#: The JSON file in the archive: old id -> bind -> new id.
ID_MAP_NAME = "id-map.json"
#: The JSON file, in the script location, that says what a conversion moves where while
#: it runs (see :func:`recover`).
JOURNAL_NAME = ".lockstep-journal.json"
_TEMPLATE = "script.py.mako"
_TEMP_SUFFIX = ".lockstep-tmp"
_IDENTIFIERS = frozenset({"revision", "down_revision", "branch_labels", "depends_on"})
#: The names the package's template imports itself: an old import of one is dropped.
_TEMPLATE_NAMES = {
    ("alembic", "op", "op"),
    ("sqlalchemy", None, "sa"),
    ("typing", "Sequence", "Sequence"),
    ("collections.abc", "Sequence", "Sequence"),
}
_FILE_HEADER = (
    "from collections.abc import Sequence\n\nimport sqlalchemy as sa\nfrom alembic import op\n"
)


@dataclass(frozen=True)
class BindTarget:
    """A bind of the app, and how the lockstep files name it."""

    #: The bind's name (``"default"`` for the default bind).
    name: str
    #: The old function suffix, ``upgrade_<suffix>()``: Flask-Migrate uses ``""`` for the
    #: default bind, Flask-Alembic 3 the bind's name.
    suffix: str
    #: Where this bind's new revision files go (``Bind.version_locations[0]``).
    folder: Path
    #: The bind's branch label (``Bind.branch_label``).
    label: str


@dataclass(frozen=True)
class NewFile:
    """One bind's revision file, converted from one lockstep revision."""

    bind: str
    old_id: str
    new_id: str
    path: Path
    #: The text to write.
    source: str


@dataclass(frozen=True)
class Conversion:
    """Everything ``apply_conversion`` writes and moves, computed by ``plan_conversion``."""

    binds: tuple[BindTarget, ...]
    default_bind: str
    files: tuple[NewFile, ...]
    #: Old id -> bind -> new id; ``None`` when that bind has no revision at or below it
    #: (a file of the history that was written for the default database only).
    id_map: Mapping[str, Mapping[str, str | None]] = field(hash=False)
    #: The old revision files, moved into :attr:`archive`.
    old_files: tuple[Path, ...]
    #: The folder the old files, the old template and the id map go to (never scanned).
    archive: Path
    #: The ``script.py.mako`` replaced by this package's.
    template: Path

    def new_ids(self, bind: str, old_heads: Iterable[str]) -> tuple[str, ...]:
        """A bind's new version rows from the old ids its database recorded (empty stays
        empty). An id the old history does not have is an error naming the bind."""
        found: list[str] = []
        for old in old_heads:
            if old not in self.id_map:
                raise RevisionError(
                    f"Bind {bind!r} records revision {old!r}, which the lockstep history "
                    "being converted does not have.",
                    bind=bind,
                    revision=old,
                    hint="Restore the revision file that wrote it, or stamp the database "
                    "with a revision that exists before converting.",
                )
            new = self.id_map[old].get(bind)
            if new is not None and new not in found:
                found.append(new)
        return tuple(found)


def derived_id(old_id: str, bind: str) -> str:
    """The id a bind other than the default gets for an old revision: stable, 12 hex."""
    return hashlib.sha256(f"{old_id}\x00{bind}".encode()).hexdigest()[:12]


def is_lockstep_file(path: Path) -> bool:
    """A revision file whose ``upgrade`` or ``downgrade`` takes the database's name (read
    with ast): the same rule by which ``upgrade`` refuses to run it
    (:func:`~flask_alembic.revision_cache.lockstep_function`)."""
    try:
        source = path.read_bytes()
        tree = ast.parse(source)
    except (OSError, SyntaxError, ValueError):
        return False
    return _assigns(tree, "revision") and lockstep_function(source) is not None


def find_lockstep(folders: Iterable[Path]) -> list[Path]:
    """The lockstep revision files among the .py files of ``folders``."""
    return [path for folder in folders for path in _sources(folder) if is_lockstep_file(path)]


def plan_conversion(
    old_folders: Sequence[Path],
    targets: Sequence[BindTarget],
    default_bind: str,
    script_location: Path,
) -> Conversion:
    """Read the lockstep history and compute every new file; writes nothing.

    Every revision file of ``old_folders`` is read: lockstep ones, and those written
    before the project had several databases (``upgrade()`` without ``engine_name``),
    which go to the default bind only. Every step is kept, empty ones included, so a
    bind's id for an old id is ``None`` only for those single-database files.

    Raises :class:`~flask_alembic.errors.ScriptDirectoryError` (one line, naming the file)
    for what cannot be converted, and when ``<script_location>/.lockstep-archive``
    already exists.
    """
    script_location = Path(script_location)
    binds = _check_targets(targets, default_bind)
    archive = script_location / ARCHIVE_NAME
    _check_archive(archive, binds)
    _check_inside(script_location, old_folders, binds)
    revisions = _read_history(old_folders, binds, default_bind)
    order = _topological(revisions)
    id_map = _map_ids(order, binds, default_bind)
    files = _render_all(order, revisions, binds, default_bind, id_map)
    return Conversion(
        binds=binds,
        default_bind=default_bind,
        files=files,
        id_map=id_map,
        old_files=tuple(rev.path for rev in order),
        archive=archive,
        template=script_location / _TEMPLATE,
    )


# -- reading the old files ---------------------------------------------------------------


@dataclass(frozen=True)
class _Function:
    """A function taken out of an old file: its leading comments and its body's text."""

    lead: str
    body: str


@dataclass(frozen=True, kw_only=True)
class _Chunk:
    """Top-level code kept in every new file, with the comments above it."""

    text: str
    #: Whether it came before the revision identifiers (else after them).
    head: bool
    #: The import it is, to drop the names the template already imports.
    node: ast.Import | ast.ImportFrom | None = None


@dataclass(kw_only=True)
class _OldRevision:
    path: Path
    revision: str
    down_revision: tuple[str, ...]
    branch_labels: tuple[str, ...]
    depends_on: tuple[str, ...]
    docstring: str | None
    future: list[str]
    chunks: list[_Chunk]
    #: Bind name -> (upgrade, downgrade); a file written for one database has the
    #: default bind's only.
    functions: dict[str, tuple[_Function, _Function]]


def _sources(folder: Path) -> list[Path]:
    """The .py files Alembic would load from ``folder``, in name order."""
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [
        Path(folder) / name
        for name in names
        if name.endswith(".py")
        and not name.startswith((".#", "__init__"))
        and (Path(folder) / name).is_file()
    ]


def _assigns(tree: ast.Module, name: str) -> bool:
    return any(_assigned_name(node) == name for node in tree.body)


def _assigned_name(node: ast.stmt) -> str | None:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        return target.id if isinstance(target, ast.Name) else None
    if isinstance(node, ast.AnnAssign) and node.value is not None:
        return node.target.id if isinstance(node.target, ast.Name) else None
    return None


def _positional(node: ast.FunctionDef) -> bool:
    return bool(node.args.posonlyargs or node.args.args)


def _error(path: Path, message: str, hint: str) -> ScriptDirectoryError:
    return ScriptDirectoryError(f"Cannot convert {path}: {message}", path=str(path), hint=hint)


def _check_targets(targets: Sequence[BindTarget], default_bind: str) -> tuple[BindTarget, ...]:
    binds = tuple(targets)
    names = [t.name for t in binds]
    if default_bind not in names:
        raise ScriptDirectoryError(
            f"The default bind {default_bind!r} is not among the binds to convert for "
            f"({', '.join(names) or 'none'}).",
            bind=default_bind,
            hint="Pass every bind of the app, the default one included.",
        )
    for attribute in ("name", "suffix", "folder", "label"):
        seen: dict[object, str] = {}
        for target in binds:
            value = getattr(target, attribute)
            key = Path(value).resolve() if attribute == "folder" else value
            if key in seen:
                raise ScriptDirectoryError(
                    f"Binds {seen[key]!r} and {target.name!r} would share the {attribute} "
                    f"{value!s}.",
                    bind=target.name,
                    hint="Give each bind its own folder and label.",
                )
            seen[key] = target.name
    return binds


def _check_archive(archive: Path, binds: Iterable[BindTarget]) -> None:
    journal = archive.with_name(JOURNAL_NAME)
    if os.path.lexists(journal):
        raise ScriptDirectoryError(
            f"A conversion was stopped midway here: {journal} says what it moves where.",
            path=str(journal),
            hint=(
                "Run ",
                Command("adopt"),
                " again: it finishes (or undoes) that conversion first.",
            ),
        )
    staging = _staging(archive)
    if os.path.lexists(staging):
        raise ScriptDirectoryError(
            f"The folder {staging} is left from a conversion that was stopped, and no "
            "journal says what it moved there.",
            path=str(staging),
            hint="Move each revision file in it back to the same place in the migrations "
            "folder, delete what is left of it, then convert again.",
        )
    if os.path.lexists(archive):
        raise ScriptDirectoryError(
            f"The archive folder {archive} already exists: a lockstep history was converted "
            "here before.",
            path=str(archive),
            hint="Move that folder out of the migrations folder, then convert again.",
        )
    resolved = archive.resolve()
    for target in binds:
        folder = Path(target.folder).resolve()
        if folder == resolved or resolved in folder.parents:
            raise ScriptDirectoryError(
                f"Bind {target.name!r} would keep its revisions in {folder}, inside the "
                f"archive folder {archive}.",
                bind=target.name,
                path=str(folder),
                hint="Choose another version_location for it.",
            )


def _check_inside(
    script_location: Path, old_folders: Iterable[Path], binds: Iterable[BindTarget]
) -> None:
    """Every folder a conversion writes to or moves from is the script location or inside
    it: its journal names files relative to that folder (see :func:`recover`)."""
    for folder in old_folders:
        if not _inside(script_location, Path(folder)):
            raise ScriptDirectoryError(
                f"The revisions in {folder} are outside the migrations folder "
                f"{script_location}: adopt converts only a history kept inside it.",
                path=str(folder),
                hint="Move the revision files into the migrations folder's versions "
                "folder, then convert again.",
            )
    for target in binds:
        if not _inside(script_location, Path(target.folder)):
            raise ScriptDirectoryError(
                f"Bind {target.name!r} would keep its revisions in {target.folder}, outside "
                f"the migrations folder {script_location}: adopt converts only into it.",
                bind=target.name,
                path=str(target.folder),
                hint="Choose a version_location inside the migrations folder for it, then "
                "convert again.",
            )


def _inside(location: Path, folder: Path) -> bool:
    """Whether ``folder`` is ``location`` or inside it."""
    return _relative(location, folder / "_") is not None


def _relative(location: Path, path: Path) -> str | None:
    """``path`` relative to the folder ``location`` (``/``-separated), or ``None`` when it
    is not inside it, spelled as given or with its folders' links followed."""
    base = Path(os.path.abspath(location))
    full = Path(os.path.abspath(path))
    if base in full.parents:
        return full.relative_to(base).as_posix()
    base = Path(os.path.realpath(base))
    full = Path(os.path.realpath(full.parent)) / full.name
    if base in full.parents:
        return full.relative_to(base).as_posix()
    return None


def _read_history(
    folders: Sequence[Path], binds: tuple[BindTarget, ...], default_bind: str
) -> dict[str, _OldRevision]:
    revisions: dict[str, _OldRevision] = {}
    folded: dict[str, _OldRevision] = {}
    any_lockstep = False
    for folder in dict.fromkeys(Path(f).resolve() for f in folders):
        for path in _sources(folder):
            read = _read_file(path, binds, default_bind)
            if read is None:
                continue
            revision, lockstep = read
            any_lockstep = any_lockstep or lockstep
            other = folded.get(revision.revision.lower())
            if other is not None:
                raise ScriptDirectoryError.for_duplicate_id(
                    other.revision, str(other.path), str(path), spelled=revision.revision
                )
            revisions[revision.revision] = revision
            folded[revision.revision.lower()] = revision
    if not any_lockstep:
        where = ", ".join(str(f) for f in folders) or "no folder"
        raise ScriptDirectoryError(
            f"No lockstep revision file (one whose upgrade() takes engine_name) in {where}.",
            hint="Point the conversion at the folder holding the old multi-database history.",
        )
    labels = {label: rev for rev in revisions.values() for label in rev.branch_labels}
    for rev in revisions.values():
        for parent in rev.down_revision:
            if parent not in revisions:
                raise _error(
                    rev.path,
                    f"its down_revision {parent!r} is not a revision of the history.",
                    "Restore the missing file, or fix its down_revision.",
                )
        for dependency in rev.depends_on:
            if dependency not in revisions and dependency not in labels:
                raise _error(
                    rev.path,
                    f"its depends_on {dependency!r} is not a revision or label of the history.",
                    "Restore the missing file, or fix its depends_on.",
                )
    return revisions


def _read_file(
    path: Path, binds: tuple[BindTarget, ...], default_bind: str
) -> tuple[_OldRevision, bool] | None:
    """The revision in ``path`` and whether it is a lockstep one; ``None`` for a file that
    is not a revision (it assigns no ``revision``)."""
    try:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise _error(path, f"it cannot be read ({exc}).", "Check the file.") from None
    except (SyntaxError, ValueError) as exc:
        raise _error(
            path, f"it is not valid Python ({exc}).", "Fix the file, then convert again."
        ) from None
    if not _assigns(tree, "revision"):
        return None
    lines = text.splitlines(keepends=True)
    upgrade = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade"), None
    )
    if upgrade is None:
        raise _error(path, "it has no upgrade() function.", "Add one, or move the file away.")
    lockstep = _positional(upgrade)
    suffixes = {f"_{t.suffix}": t.name for t in binds} if lockstep else {"": default_bind}

    values: dict[str, object] = {}
    docstring: str | None = None
    future: list[str] = []
    chunks: list[_Chunk] = []
    found: dict[str, dict[str, _Function]] = {"upgrade": {}, "downgrade": {}}
    removed: set[str] = set()
    head = True
    previous_end = 0
    starts = [_start(node) for node in tree.body[1:]] + [len(lines) + 1]
    for index, node in enumerate(tree.body):
        start = _start(node)
        end = _end(lines, node, starts[index])
        if start <= previous_end:
            raise _error(
                path,
                f"line {start} holds two top-level statements.",
                "Put each top-level statement on its own line, then convert again.",
            )
        chunk = "".join(lines[previous_end:end])
        lead = "".join(lines[previous_end : start - 1])
        previous_end = end
        name = _assigned_name(node)
        if index == 0 and isinstance(node, ast.Expr) and _is_str(node.value):
            docstring = ast.get_source_segment(text, node)
        elif name in _IDENTIFIERS:
            values[name] = _literal(path, name, node)
            head = False
        elif isinstance(node, ast.ImportFrom) and node.module == "__future__":
            future.append(chunk.strip("\n") + "\n")
        elif isinstance(node, ast.FunctionDef) and (
            node.name in found or node.name.startswith(("upgrade_", "downgrade_"))
        ):
            kind, _, rest = node.name.partition("_")
            suffix: str | None = None if node.name in found else rest
            if lockstep:
                removed.add(node.name)
            if lockstep and suffix is None:
                _check_dispatch(path, node)
            elif suffix is not None and not lockstep:
                # A helper of a single-database file: kept.
                chunks.append(_Chunk(text=chunk, head=head))
            else:
                key = "" if suffix is None else f"_{suffix}"
                if key not in suffixes:
                    raise _error(
                        path,
                        f"{node.name}() is for a database that is none of the binds "
                        f"({', '.join(repr(t.name) for t in binds)}).",
                        "Configure that database as a bind of the app, or delete its "
                        "functions from the file if the database is gone.",
                    )
                if node.decorator_list or _positional(node) or node.args.kwonlyargs:
                    raise _error(
                        path,
                        f"its {node.name}() takes arguments or has decorators, which a "
                        "bind's upgrade() and downgrade() cannot have.",
                        "Move that into a helper the function calls, then convert again.",
                    )
                found[kind][suffixes[key]] = _Function(
                    lead=_comments(lead), body=_body(lines, node, end)
                )
        elif isinstance(node, ast.Import | ast.ImportFrom):
            chunks.append(_Chunk(text=chunk, head=head, node=node))
        else:
            chunks.append(_Chunk(text=chunk, head=head))

    functions: dict[str, tuple[_Function, _Function]] = {}
    for bind in suffixes.values():
        suffix = next(key for key, value in suffixes.items() if value == bind)
        for kind in ("upgrade", "downgrade"):
            if bind not in found[kind]:
                raise _error(
                    path,
                    f"it has no {kind}{suffix}() function for bind {bind!r}.",
                    f"Add {kind}{suffix}() (with 'pass' if nothing changes there), "
                    "then convert again.",
                )
        functions[bind] = (found["upgrade"][bind], found["downgrade"][bind])
    _check_references(path, chunks, functions, removed)
    revision = values.get("revision")
    if not isinstance(revision, str) or not revision:
        raise _error(path, "its revision is not a string.", "Give it a string id.")
    return (
        _OldRevision(
            path=path,
            revision=revision,
            down_revision=_ids(path, "down_revision", values.get("down_revision")),
            branch_labels=_ids(path, "branch_labels", values.get("branch_labels")),
            depends_on=_ids(path, "depends_on", values.get("depends_on")),
            docstring=docstring,
            future=future,
            chunks=chunks,
            functions=functions,
        ),
        lockstep,
    )


def _decorators(node: ast.stmt) -> list[ast.expr]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.decorator_list
    return []


def _is_str(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _literal(path: Path, name: str, node: ast.stmt) -> object:
    value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
    try:
        return ast.literal_eval(value) if value is not None else None
    except (ValueError, TypeError, SyntaxError, RecursionError):
        raise _error(
            path,
            f"its {name} is not a plain value (a string, a tuple of strings or None).",
            f"Write {name} as a literal, then convert again.",
        ) from None


def _ids(path: Path, name: str, value: object) -> tuple[str, ...]:
    try:
        return revision_ids(value)
    except TypeError:
        pass
    raise _error(
        path,
        f"its {name} is {value!r}, not a string, a tuple of strings or None.",
        f"Fix its {name}, then convert again.",
    )


def _comments(lead: str) -> str:
    """The comment lines above a function, without the blank lines around them."""
    kept = [line for line in lead.splitlines(keepends=True) if line.strip()]
    return "".join(line if line.endswith("\n") else line + "\n" for line in kept)


def _start(node: ast.stmt) -> int:
    """The first line of a top-level statement, its decorators included."""
    return min([node.lineno, *(d.lineno for d in _decorators(node))])


def _end(lines: list[str], node: ast.stmt, limit: int) -> int:
    """The last line of a top-level statement, with the indented comments that follow its
    last line (they belong to its body) but not those of the next statement (before
    line ``limit``)."""
    end = node.end_lineno or node.lineno
    for number in range(end + 1, limit):
        line = lines[number - 1]
        if not line.strip():
            continue
        if line[0] in " \t" and line.lstrip().startswith("#"):
            end = number
        else:
            break
    return end


def _body(lines: list[str], node: ast.FunctionDef, end: int) -> str:
    """The text of a function's body as written: comments, blank lines and indentation kept."""
    row, column = _header_end(lines, node)
    rest = lines[row - 1][column:].strip()
    body = "".join(lines[row:end])
    if rest and not rest.startswith("#"):
        # ``def upgrade_(): pass``: the body shares the header's line.
        body = f"    {rest}\n{body}"
    if not body.strip():  # pragma: no cover - a function always has a body
        body = "    pass\n"
    return body if body.endswith("\n") else body + "\n"


def _header_end(lines: list[str], node: ast.FunctionDef) -> tuple[int, int]:
    """The line and column just after the colon that ends a function's ``def`` header."""
    source = "".join(lines[node.lineno - 1 : node.end_lineno])
    depth = 0
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.OP and token.string in "([{":
            depth += 1
        elif token.type == tokenize.OP and token.string in ")]}":
            depth -= 1
        elif token.type == tokenize.OP and token.string == ":" and depth == 0:
            return node.lineno + token.end[0] - 1, token.end[1]
    raise AssertionError(node.name)  # pragma: no cover - ast parsed the header


def _check_dispatch(path: Path, node: ast.FunctionDef) -> None:
    """Refuse an ``upgrade(engine_name)`` that does more than call ``upgrade_<name>()``."""
    params = [*node.args.posonlyargs, *node.args.args]
    statements = list(node.body)
    if statements and isinstance(statements[0], ast.Expr) and _is_str(statements[0].value):
        statements = statements[1:]
    if (
        len(params) == 1
        and len(statements) == 1
        and isinstance(statements[0], ast.Expr)
        and _is_dispatch_call(statements[0].value, node.name, params[0].arg)
    ):
        return
    raise _error(
        path,
        f"its {node.name}({', '.join(p.arg for p in params)}) does more than call "
        f"{node.name}_<name>(); that code cannot be split between the binds.",
        f"Move that code into each {node.name}_<name>() that needs it, then convert again.",
    )


def _is_dispatch_call(call: ast.expr, kind: str, param: str) -> bool:
    """``globals()["upgrade_%s" % engine_name]()`` or an f-string or ``+`` spelling of it."""
    if not (isinstance(call, ast.Call) and not call.args and not call.keywords):
        return False
    lookup = call.func
    if not (
        isinstance(lookup, ast.Subscript)
        and isinstance(lookup.value, ast.Call)
        and isinstance(lookup.value.func, ast.Name)
        and lookup.value.func.id == "globals"
        and not lookup.value.args
    ):
        return False
    key = lookup.slice
    prefix = f"{kind}_"

    def is_param(node: ast.expr) -> bool:
        return isinstance(node, ast.Name) and node.id == param

    if isinstance(key, ast.BinOp) and isinstance(key.left, ast.Constant):
        if isinstance(key.op, ast.Mod):
            return key.left.value == f"{prefix}%s" and is_param(key.right)
        if isinstance(key.op, ast.Add):
            return key.left.value == prefix and is_param(key.right)
    if isinstance(key, ast.JoinedStr) and len(key.values) == 2:
        first, second = key.values
        return (
            isinstance(first, ast.Constant)
            and first.value == prefix
            and isinstance(second, ast.FormattedValue)
            and second.conversion == -1
            and second.format_spec is None
            and is_param(second.value)
        )
    return False


def _check_references(
    path: Path,
    chunks: list[_Chunk],
    functions: Mapping[str, tuple[_Function, _Function]],
    removed: set[str],
) -> None:
    """Refuse code that calls a function the conversion takes apart."""
    texts = [chunk.text for chunk in chunks if chunk.node is None]
    texts += [_dedented(f.body) for pair in functions.values() for f in pair]
    for source in texts:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Name) and node.id in removed:
                raise _error(
                    path,
                    f"some of its code calls {node.id}(), which the conversion splits into "
                    "one file per bind.",
                    "Put that code in a helper function of its own, then convert again.",
                )


def _dedented(body: str) -> str:
    """A function body as a module, to walk its names."""
    return "def _body():\n" + body


# -- the new history ----------------------------------------------------------------------


def _topological(revisions: Mapping[str, _OldRevision]) -> list[_OldRevision]:
    """The revisions, each after its parents and dependencies (ties in id order)."""
    labels = {label: rev.revision for rev in revisions.values() for label in rev.branch_labels}
    order: list[_OldRevision] = []
    state: dict[str, int] = {}

    def visit(rev_id: str, trail: tuple[str, ...]) -> None:
        if state.get(rev_id) == 2:
            return
        rev = revisions[rev_id]
        if state.get(rev_id) == 1:
            raise _error(
                rev.path,
                f"its revisions form a cycle ({' -> '.join((*trail, rev_id))}).",
                "Fix the down_revision / depends_on of the revisions named.",
            )
        state[rev_id] = 1
        for parent in (*rev.down_revision, *rev.depends_on):
            visit(labels.get(parent, parent), (*trail, rev_id))
        state[rev_id] = 2
        order.append(rev)

    for rev_id in sorted(revisions):
        visit(rev_id, ())
    return order


def _map_ids(
    order: list[_OldRevision], binds: tuple[BindTarget, ...], default_bind: str
) -> dict[str, dict[str, str | None]]:
    id_map: dict[str, dict[str, str | None]] = {}
    owners: dict[str, tuple[str, str]] = {}
    labels = {label.lower() for rev in order for label in rev.branch_labels}
    labels.update(t.label.lower() for t in binds)
    for rev in order:
        row: dict[str, str | None] = {}
        for target in binds:
            if target.name not in rev.functions:
                row[target.name] = None
                continue
            new = (
                rev.revision
                if target.name == default_bind
                else derived_id(rev.revision, target.name)
            )
            other = owners.get(new.lower())
            if other is not None or (target.name != default_bind and new.lower() in labels):
                what = "a branch label"
                if other is not None:
                    what = f"the id of revision {other[1]} for bind {other[0]!r}"
                raise _error(
                    rev.path,
                    f"its new id {new!r} for bind {target.name!r} is already {what}.",
                    "Give this revision a new id (its 'revision' variable, and every "
                    "down_revision or depends_on naming it), then convert again.",
                )
            owners[new.lower()] = (target.name, rev.revision)
            row[target.name] = new
        id_map[rev.revision] = row
    return id_map


def _render_all(
    order: list[_OldRevision],
    revisions: Mapping[str, _OldRevision],
    binds: tuple[BindTarget, ...],
    default_bind: str,
    id_map: Mapping[str, Mapping[str, str | None]],
) -> tuple[NewFile, ...]:
    old_labels = {label: rev.revision for rev in order for label in rev.branch_labels}
    taken: dict[str, str] = {}
    for rev in order:
        for label in rev.branch_labels:
            for target in binds:
                if target.name != default_bind and label.lower() == target.label.lower():
                    raise _error(
                        rev.path,
                        f"its branch label {label!r} is the label of bind {target.name!r}, "
                        "whose first revision carries it.",
                        "Rename the label (and every depends_on naming it), then convert again.",
                    )
    files: list[NewFile] = []
    old_paths = {rev.path.resolve() for rev in order}
    for target in binds:
        labelled = False
        for rev in order:
            new_id = id_map[rev.revision][target.name]
            if new_id is None:
                continue
            parents = _mapped(rev.down_revision, target.name, id_map)
            if target.name == default_bind:
                depends: tuple[str, ...] = rev.depends_on
                labels = list(rev.branch_labels)
            else:
                depends = _mapped(
                    (old_labels.get(d, d) for d in rev.depends_on), target.name, id_map
                )
                labels = []
            if not parents and not labelled:
                labelled = True
                if target.label not in labels:
                    labels.insert(0, target.label)
            for label in labels:
                owner = taken.get(label.lower())
                if owner is not None and owner != new_id:
                    raise _error(
                        rev.path,
                        f"the branch label {label!r} would be carried by two revisions "
                        f"({owner} and {new_id}).",
                        "Rename one of the labels, then convert again.",
                    )
                taken[label.lower()] = new_id
            source = _render(rev, target.name, new_id, parents, tuple(labels), depends)
            path = Path(target.folder) / _file_name(rev, new_id, target.name == default_bind)
            files.append(
                NewFile(
                    bind=target.name,
                    old_id=rev.revision,
                    new_id=new_id,
                    path=path,
                    source=source,
                )
            )
    seen: dict[Path, NewFile] = {}
    for new in files:
        resolved = new.path.resolve()
        other = seen.get(resolved)
        if other is not None:
            raise _error(
                revisions[new.old_id].path,
                f"its new file {new.path} would also be written for revision {other.old_id}.",
                "Rename one of the two old files, then convert again.",
            )
        seen[resolved] = new
        if os.path.lexists(new.path) and resolved not in old_paths:
            raise _error(
                revisions[new.old_id].path,
                f"its new file for bind {new.bind!r}, {new.path}, already exists.",
                "Move that file away, then convert again.",
            )
    return tuple(files)


def _mapped(
    old_ids: Iterable[str], bind: str, id_map: Mapping[str, Mapping[str, str | None]]
) -> tuple[str, ...]:
    found: list[str] = []
    for old in old_ids:
        new = id_map[old][bind]
        if new is not None and new not in found:
            found.append(new)
    return tuple(found)


def _file_name(rev: _OldRevision, new_id: str, keep: bool) -> str:
    if keep:
        return rev.path.name
    stem = rev.path.stem
    rest = stem[len(rev.revision) :] if stem.startswith(rev.revision) else f"_{stem}"
    return f"{new_id}{rest}.py"


def _render(
    rev: _OldRevision,
    bind: str,
    new_id: str,
    parents: tuple[str, ...],
    labels: tuple[str, ...],
    depends: tuple[str, ...],
) -> str:
    """One bind's file, in the form of this package's ``script.py.mako``."""
    upgrade, downgrade = rev.functions[bind]
    used = _used_names(rev, upgrade, downgrade)
    head = "".join(_chunk_text(c, used) for c in rev.chunks if c.head).strip("\n")
    tail = "".join(_chunk_text(c, used) for c in rev.chunks if not c.head).strip("\n")
    parts = [_docstring(rev, new_id, parents), "\n\n"]
    if rev.future:
        parts += ["".join(rev.future), "\n"]
    parts.append(_FILE_HEADER)
    if head:
        parts += ["\n", head, "\n"]
    parts += [
        "\n# revision identifiers, used by Alembic.\n",
        f"revision: str = {new_id!r}\n",
        f"down_revision: str | Sequence[str] | None = {_value(parents)!r}\n",
        f"branch_labels: str | Sequence[str] | None = {(labels or None)!r}\n",
        f"depends_on: str | Sequence[str] | None = {_value(depends)!r}\n",
    ]
    if tail:
        parts += ["\n\n", tail, "\n"]
    parts += [
        "\n\n",
        upgrade.lead,
        "def upgrade() -> None:\n",
        upgrade.body,
        "\n\n",
        downgrade.lead,
        "def downgrade() -> None:\n",
        downgrade.body,
    ]
    return "".join(parts)


def _value(ids: tuple[str, ...]) -> str | tuple[str, ...] | None:
    if not ids:
        return None
    return ids[0] if len(ids) == 1 else ids


def _docstring(rev: _OldRevision, new_id: str, parents: tuple[str, ...]) -> str:
    """The old docstring with its ``Revision ID:`` and ``Revises:`` lines made true."""
    if rev.docstring is None:
        return f'"""\nRevision ID: {new_id}\nRevises: {", ".join(parents)}\n"""'.replace(
            " \n", "\n"
        )
    lines = rev.docstring.splitlines(keepends=True)
    for index, line in enumerate(lines):
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        ending = "\n" if line.endswith("\n") else ""
        if stripped.startswith("Revision ID:") and ending:
            lines[index] = f"{indent}Revision ID: {new_id}{ending}"
        elif stripped.startswith("Revises:") and ending:
            lines[index] = f"{indent}Revises: {', '.join(parents)}".rstrip() + ending
    return "".join(lines)


def _used_names(rev: _OldRevision, *functions: _Function) -> set[str]:
    names: set[str] = set()
    sources = [c.text for c in rev.chunks if c.node is None]
    sources += [_dedented(f.body) for f in functions]
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                # A string annotation may name an import.
                names.update(node.value.replace("[", " ").replace("]", " ").split())
    return names


def _chunk_text(chunk: _Chunk, used: set[str]) -> str:
    """A kept chunk's text; an import loses the names the template imports, and the
    ``typing`` names only the old revision identifiers used."""
    node = chunk.node
    if node is None:
        return chunk.text
    module = node.module if isinstance(node, ast.ImportFrom) else None
    kept = []
    for alias in node.names:
        bound = alias.asname or alias.name
        if isinstance(node, ast.Import):
            spelled: tuple[str | None, str | None, str] = (alias.name, None, bound)
        else:
            spelled = (module, alias.name, bound)
        if spelled in _TEMPLATE_NAMES:
            continue
        if module == "typing" and bound not in used:
            continue
        kept.append(alias)
    if len(kept) == len(node.names):
        return chunk.text
    if not kept:
        return ""
    lead = _comments(chunk.text[: len(chunk.text) - len(chunk.text.lstrip())])
    if isinstance(node, ast.Import):
        shorter: ast.stmt = ast.Import(names=kept)
    else:
        shorter = ast.ImportFrom(module=node.module, names=kept, level=node.level)
    return lead + ast.unparse(shorter) + "\n"


# -- writing ------------------------------------------------------------------------------


def apply_conversion(conversion: Conversion) -> None:
    """Write the new files, move the old ones and the old template into the archive,
    write the id map (JSON) there, and install this package's ``script.py.mako``.

    Writes nothing if a check fails first; if a write fails, removes what it wrote, so
    no folder is left half converted (new files are written under temporary names in
    their own folders, then renamed). A journal (:data:`JOURNAL_NAME`, in the script
    location) says what moves where before the first file is written: a process killed
    at any point leaves it, and :func:`recover` then finishes or undoes the conversion.
    """
    archive = conversion.archive
    location = conversion.template.parent
    _check_archive(archive, conversion.binds)
    for path in conversion.old_files:
        if not path.is_file():
            raise _error(path, "the file is gone since the conversion was planned.", "Plan again.")
    template_source = config.template_dir() / _TEMPLATE
    old_files = {p.resolve() for p in conversion.old_files}
    for new in conversion.files:
        if os.path.lexists(new.path) and new.path.resolve() not in old_files:
            raise _error(new.path, "the file already exists.", "Move it away, then convert again.")

    staging = _staging(archive)
    script_location = location.resolve()
    moves: list[tuple[Path, Path]] = []
    for old in conversion.old_files:
        parent = old.parent.resolve()
        relative = (
            parent.relative_to(script_location)
            if parent == script_location or script_location in parent.parents
            else Path(parent.name)
        )
        moves.append((old, staging / relative / old.name))
    if os.path.lexists(conversion.template):
        moves.append((conversion.template, staging / _TEMPLATE))
    temps = [(_temp_name(new.path), new) for new in conversion.files]
    moves += [(temp, new.path) for temp, new in temps]
    new_template = _temp_name(conversion.template)
    moves += [(new_template, conversion.template), (staging, archive)]
    folders = [staging, *(target.parent for _, target in moves[:-1])]
    journal = _Journal(
        location=location,
        temps=[*(temp for temp, _ in temps), new_template, staging / ID_MAP_NAME],
        folders=_missing(folders),
        moves=moves,
    )

    written: list[Path] = []
    try:
        journal.save(_WRITING)
        for folder in journal.folders:
            folder.mkdir()
        for temp, new in temps:
            with open(temp, "x", encoding="utf-8", newline="") as handle:
                written.append(temp)
                handle.write(new.source)
        id_map = {
            "default_bind": conversion.default_bind,
            "binds": {t.name: {"suffix": t.suffix, "label": t.label} for t in conversion.binds},
            "revisions": {old: dict(row) for old, row in conversion.id_map.items()},
        }
        written.append(staging / ID_MAP_NAME)  # a folder of this run's: nothing else is there
        (staging / ID_MAP_NAME).write_text(json.dumps(id_map, indent=2) + "\n", encoding="utf-8")
        with open(new_template, "x", encoding="utf-8", newline="") as handle:
            written.append(new_template)
            handle.write(template_source.read_text(encoding="utf-8"))
        journal.temps = written  # only what this run wrote is removed on failure
        # Every byte is written: only renames are left. From here on a re-run finishes.
        journal.save(_MOVING)
    except OSError as exc:
        journal.temps = written
        journal.roll_back(moved=False)
        raise _write_error(exc) from None

    try:
        for source, target in moves:
            os.replace(source, target)
    except OSError as exc:
        # Saved so that a kill while undoing is undone too; if even that fails, the
        # journal still says "moving", and a re-run finishes instead.
        with contextlib.suppress(OSError):
            journal.save(_UNDOING)
        journal.roll_back(moved=True)
        raise _write_error(exc) from None
    journal.remove()


def recover(script_location: Path) -> str | None:
    """Finish or undo a conversion stopped midway (a killed process) in ``script_location``,
    from its journal: finished once every byte was written, else undone. Returns what
    was done (``"finished"`` or ``"undone"``), or ``None`` when there is no journal.

    Safe to run again if it is stopped itself. Never removes a file it did not write.
    """
    path = Path(script_location) / JOURNAL_NAME
    with contextlib.suppress(OSError):
        _temp_name(path).unlink()
    if not os.path.lexists(path):
        return None
    journal = _Journal.load(path)
    if journal.phase == _MOVING:
        journal.roll_forward()
        journal.remove()
        return "finished"
    journal.roll_back(moved=journal.phase == _UNDOING)
    return "undone"


#: What to do when a stopped conversion cannot be finished.
_START_OVER = (
    "Put the migrations folder back as it was before adopting, from the backup (without "
    f"{JOURNAL_NAME} and the folders adopt made), then run adopt again."
)
_WRITING = "writing"
_MOVING = "moving"
_UNDOING = "undoing"


@dataclass(kw_only=True)
class _Journal:
    """What a conversion writes and moves, kept on disk while it runs."""

    location: Path
    #: The files written (temporary names, the id map): removed when undoing.
    temps: list[Path]
    #: The folders made, outermost first: removed when undoing, once empty.
    folders: list[Path]
    #: The renames, in order.
    moves: list[tuple[Path, Path]]
    phase: str = _WRITING

    @property
    def path(self) -> Path:
        return self.location / JOURNAL_NAME

    def save(self, phase: str) -> None:
        """Write the journal, every path in it relative to :attr:`location`: a journal
        copied or moved with its folder then names the files beside it."""
        self.phase = phase
        data = {
            "phase": phase,
            "temps": [self._relative(p) for p in self.temps],
            "folders": [self._relative(p) for p in self.folders],
            "moves": [[self._relative(s), self._relative(t)] for s, t in self.moves],
        }
        temp = _temp_name(self.path)
        temp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(temp, self.path)

    def _relative(self, path: Path) -> str:
        relative = _relative(self.location, path)
        if relative is None:
            raise ScriptDirectoryError(
                f"Cannot convert into {path}: it is outside the migrations folder "
                f"{self.location}; nothing was changed.",
                path=str(path),
                hint="Keep every revision folder inside the migrations folder, then convert again.",
            )
        return relative

    @classmethod
    def load(cls, path: Path) -> _Journal:
        """Read the journal at ``path``; its paths are taken relative to the folder it is
        in. Anything but what :meth:`save` writes is refused, naming the journal."""
        location = path.parent
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("it is not a JSON object")
            phase = data.get("phase")
            if phase not in (_WRITING, _MOVING, _UNDOING):
                raise ValueError(f"its phase is {phase!r}")
            temps = _paths(location, data.get("temps"), "temps")
            folders = _paths(location, data.get("folders"), "folders")
            moves_data = data.get("moves")
            if not isinstance(moves_data, list) or not all(
                isinstance(move, list) and len(move) == 2 for move in moves_data
            ):
                raise ValueError("its 'moves' is not a list of [from, to] pairs")
            flat = _paths(location, [p for move in moves_data for p in move], "moves")
            moves = list(zip(flat[::2], flat[1::2], strict=True))
            archive = location / ARCHIVE_NAME
            if not moves or moves[-1] != (_staging(archive), archive):
                raise ValueError(f"its last move is not the one to {ARCHIVE_NAME}")
        except (OSError, ValueError) as exc:
            raise ScriptDirectoryError(
                f"Cannot read the journal {path} of a conversion that was stopped: {exc}.",
                path=str(path),
                hint=_START_OVER,
            ) from None
        return cls(location=location, temps=temps, folders=folders, moves=moves, phase=phase)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def roll_forward(self) -> None:
        """Do the renames not done yet. A rename is done once its target exists: each
        target is new to this conversion, or left free by an earlier rename; once the
        last one (the archive's) is done, every one is.

        A file put back by hand where a done rename took it from (``git checkout`` of a
        revision that went to the archive) is removed first when it is the same, byte for
        byte, as the copy moved away; if it differs, nothing moves and the error names it.
        """
        staging, archive = self.moves[-1]
        archived = os.path.lexists(archive) and not os.path.lexists(staging)
        restored = self._restored(archived)
        if archived:
            for path in restored:
                path.unlink()
            return
        # Played on paper first, so that nothing moves when a rename cannot be done.
        present = {p: os.path.lexists(p) for move in self.moves for p in move}
        for path in restored:
            present[path] = False
        for source, target in self.moves:
            if present[target]:
                continue
            if not present[source]:
                raise ScriptDirectoryError(
                    f"Cannot finish the conversion that was stopped in {self.location}: "
                    f"{source} is gone (it was to move to {target}).",
                    path=str(source),
                    hint=_START_OVER,
                )
            present[source], present[target] = False, True
        for path in restored:
            path.unlink()
        for source, target in self.moves:
            if not os.path.lexists(target):
                os.replace(source, target)

    def _restored(self, archived: bool) -> list[Path]:
        """The files put back by hand where a done rename took them from, each the same
        as the copy it moved (``archived``: the staging folder is renamed already)."""
        staging, archive = self.moves[-1]
        found: list[Path] = []
        for index, (source, target) in enumerate(self.moves[:-1]):
            if staging not in target.parents:
                continue  # only the old files and the old template go to the archive
            if archived:
                target = archive / target.relative_to(staging)
            if not (os.path.lexists(target) and os.path.lexists(source)):
                continue
            # A later rename that is done put its own file there (a new file, the new template).
            if any(
                later == source and not os.path.lexists(earlier)
                for earlier, later in self.moves[index + 1 :]
            ):
                if source != self.location / _TEMPLATE and _same_file_content(source, target):
                    raise ScriptDirectoryError(
                        f"Cannot finish the conversion that was stopped in {self.location}: "
                        f"{source} was put back by hand over the file converted from it "
                        f"(it is the same as {target}, which the conversion moved away).",
                        path=str(source),
                        hint=_START_OVER,
                    )
                continue
            if not _same_file_content(source, target):
                raise ScriptDirectoryError(
                    f"Cannot finish the conversion that was stopped in {self.location}: "
                    f"{source} was put back after it was moved to {target}, and differs "
                    "from it.",
                    path=str(source),
                    hint=f"Move {source} out of the migrations folder (keep your changes "
                    "elsewhere), then run adopt again: it finishes the conversion.",
                )
            found.append(source)
        return found

    def roll_back(self, *, moved: bool) -> None:
        """Undo the renames done (``moved``), remove the files written and the folders
        made, then the journal. A file is moved back only to a free place: nothing is
        overwritten, nothing is deleted but this conversion's own new files, and a moved
        copy of a file put back by hand, the same byte for byte."""
        if moved:
            staging = self.moves[-1][0]
            for source, target in reversed(self.moves):
                if not os.path.lexists(target):
                    continue
                if not os.path.lexists(source):
                    os.replace(target, source)
                elif staging in target.parents and _same_file_content(source, target):
                    with contextlib.suppress(OSError):
                        target.unlink()
        for path in self.temps:
            with contextlib.suppress(OSError):
                if path.is_file() and not path.is_symlink():
                    path.unlink()
        for folder in reversed(self.folders):
            with contextlib.suppress(OSError):
                folder.rmdir()
        self.remove()


def _same_file_content(first: Path, second: Path) -> bool:
    """Whether two regular files (not links) hold the same bytes."""
    if first.is_symlink() or second.is_symlink():
        return False
    try:
        return filecmp.cmp(first, second, shallow=False)
    except OSError:
        return False


def _paths(location: Path, value: object, key: str) -> list[Path]:
    """A journal's list of relative paths, each taken in ``location``; ``ValueError`` for
    anything else, or a path that would leave ``location``."""
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ValueError(f"its {key!r} is not a list of paths")
    found: list[Path] = []
    for text in value:
        relative = PurePosixPath(text)
        if relative.is_absolute() or not relative.parts or ".." in relative.parts:
            raise ValueError(f"{text!r} is not a path inside {location}")
        found.append(location.joinpath(*relative.parts))
    return found


def _missing(folders: Iterable[Path]) -> list[Path]:
    """The folders among ``folders`` (and their parents) that do not exist, outermost first."""
    found: list[Path] = []
    for folder in folders:
        for path in reversed([folder, *folder.parents]):
            if not path.exists() and path not in found:
                found.append(path)
    return found


def _staging(archive: Path) -> Path:
    """The archive's name while it is being filled."""
    return archive.with_name(archive.name + _TEMP_SUFFIX)


def _temp_name(path: Path) -> Path:
    """A name beside ``path`` that no tool loads (not ending in ``.py``)."""
    return path.with_name(f".{path.name}{_TEMP_SUFFIX}")


def _write_error(exc: OSError) -> ScriptDirectoryError:
    where = exc.filename or "a migrations folder"
    return ScriptDirectoryError(
        f"Cannot write the converted history: {exc.strerror or exc} ({where}); nothing "
        "was changed.",
        path=str(exc.filename) if exc.filename else None,
        hint="Fix what is named (a read-only folder, a full disk, something in the way), "
        "then convert again.",
    )
