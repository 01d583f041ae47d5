"""A version table that disagrees with its database: the tables a pending revision creates
already exist.

Then running ``upgrade`` would try to create them again (and, on MySQL and MariaDB, leave
a half-applied revision), so no hint may suggest it. What is more likely wrong is the
version table: the wrong ``version_table`` or ``version_table_schema``, or a history that
was started elsewhere. The tables a revision creates are read from its file with ``ast``:
no revision code runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .errors import Command
from .errors import Hint
from .errors import VersionTableMismatchError
from .plan import to_tuple
from .registry import Bind

if TYPE_CHECKING:
    from .history import BindHistory
    from .identity import DatabaseIdentity

__all__ = [
    "TableChange",
    "created_tables",
    "mismatch",
    "next_revisions",
    "pending_revisions",
    "table_changes",
]


def created_tables(path: str | Path) -> list[tuple[str | None, str]]:
    """The ``(schema, table)`` pairs that the ``upgrade()`` of the revision file at ``path``
    creates with ``op.create_table("name", ..., schema="s")`` (see :func:`table_changes`)."""
    return [(c.schema, c.name) for c in table_changes(path) if c.action == "create"]


class TableChange(NamedTuple):
    """One table operation of a revision's ``upgrade()``."""

    #: ``"create"``, ``"drop"`` or ``"rename"``.
    action: str
    schema: str | None
    name: str
    #: The new name, for a rename.
    new_name: str | None
    #: Whether it runs only under a condition (inside ``if``, ``try``, a loop...): a
    #: conditional create may be the revision's own "only if it is missing".
    conditional: bool


def table_changes(path: str | Path) -> list[TableChange]:
    """What the ``upgrade()`` of the revision file at ``path`` does to tables, in order, from
    its ``op.create_table``, ``op.drop_table`` and ``op.rename_table`` calls whose names are
    literals or module-level string constants (``TABLE = "user"``). A create with
    ``if_not_exists=True`` is left out. Read with :mod:`ast`, never run."""
    try:
        source = Path(path).read_bytes()
        if not any(name.encode() in source for name in _TABLE_CALLS):
            return []  # most revisions: no need to parse them
        tree = ast.parse(source, filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return []
    constants = _string_constants(tree)
    found: list[TableChange] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "upgrade":
            _collect(node.body, False, constants, found)
    return found


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """The module's top-level ``NAME = "text"`` assignments."""
    constants: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    constants[target.id] = node.value.value
    return constants


_CONDITIONAL = (ast.If, ast.Try, ast.TryStar, ast.While, ast.For, ast.AsyncFor, ast.Match)


def _collect(
    body: list[ast.stmt], conditional: bool, constants: dict[str, str], found: list[TableChange]
) -> None:
    """The table operations of ``body``, in order, marking those under a condition."""
    for statement in body:
        inner = conditional or isinstance(statement, _CONDITIONAL)
        nested = [
            child
            for field in ("body", "orelse", "finalbody", "handlers", "cases")
            for child in getattr(statement, field, None) or []
        ]
        blocks: list[ast.stmt] = []
        for child in nested:
            if isinstance(child, ast.stmt):
                blocks.append(child)
            else:  # an except handler or a match case holds statements of its own
                blocks.extend(getattr(child, "body", []))
        # The statement's own expressions (a call, the test of an if, a with's items).
        own = [
            value
            for name, value in ast.iter_fields(statement)
            if name not in {"body", "orelse", "finalbody", "handlers", "cases"}
        ]
        for value in own:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, ast.AST):
                    for call in sorted(
                        (n for n in ast.walk(item) if isinstance(n, ast.Call)),
                        key=lambda n: (n.lineno, n.col_offset),
                    ):
                        change = _change(call, inner, constants)
                        if change is not None:
                            found.append(change)
        if blocks:
            _collect(blocks, inner, constants, found)


def _change(call: ast.Call, conditional: bool, constants: dict[str, str]) -> TableChange | None:
    if not isinstance(call.func, ast.Attribute) or call.func.attr not in _TABLE_CALLS:
        return None
    action, first, second = _TABLE_CALLS[call.func.attr]
    keywords = {k.arg: k.value for k in call.keywords if k.arg is not None}
    name = _name(call.args[0] if call.args else keywords.get(first), constants)
    if name is None:
        return None
    guard = keywords.get("if_not_exists")
    if action == "create" and isinstance(guard, ast.Constant) and guard.value is True:
        return None  # creates it only if missing: an existing table is no conflict
    new_name = None
    if second is not None:
        new_name = _name(call.args[1] if len(call.args) > 1 else keywords.get(second), constants)
        if new_name is None:
            return None
    schema = _name(keywords.get("schema"), constants)
    return TableChange(action, schema, name, new_name, conditional)


def _name(node: ast.expr | None, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return _literal(node)


#: The table operations whose effect is followed: the action, the keyword of the table's
#: name, and of the new name.
_TABLE_CALLS = {
    "create_table": ("create", "table_name", None),
    "drop_table": ("drop", "table_name", None),
    "rename_table": ("rename", "old_table_name", "new_table_name"),
}


def _literal(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def next_revisions(history: BindHistory, current: Iterable[str]) -> list[str]:
    """The revisions an upgrade from ``current`` would run first: not applied, and every
    revision they build on applied (or none, at base)."""
    applied = history.applied(current)
    result = []
    for rev in history.revision_map.iterate_revisions("heads", "base"):
        if rev.revision in applied:
            continue
        below = to_tuple(rev.down_revision)
        if all(down in applied for down in below):
            result.append(rev.revision)
    return sorted(result)


def pending_revisions(history: BindHistory, current: Iterable[str]) -> list[str]:
    """Every revision an upgrade from ``current`` to the heads would run, in an order it
    could run them (each after the revisions it builds on)."""
    applied = history.applied(current)
    return [
        rev.revision
        for rev in reversed(list(history.revision_map.iterate_revisions("heads", "base")))
        if rev.revision not in applied
    ]


def mismatch(
    bind: Bind,
    history: BindHistory,
    current: tuple[str, ...],
    connection: sa.Connection,
    identity: DatabaseIdentity,
) -> VersionTableMismatchError | None:
    """The error to give instead of suggesting ``upgrade``, when a revision that upgrading
    would run creates a table that ``bind``'s database already has (or renames a table onto
    one); ``None`` otherwise.

    The pending revisions are followed in order, from the tables the database has: a table
    that an earlier pending revision drops or renames away may be created again by a later
    one without a mismatch. Names are compared as the database does (``identity.name``:
    without case on SQLite, and on MySQL and MariaDB with ``lower_case_table_names``), and
    the default schema named or not is one schema. A create under a condition (``if not has_table``)
    is no mismatch.
    """
    inspector = sa.inspect(connection)
    default = identity.default_schema or inspector.default_schema_name
    existing: dict[str | None, set[str]] = {}

    def tables(schema: str | None) -> set[str]:
        named = schema is not None and default is not None
        if named and identity.name(schema or "") == identity.name(default or ""):
            schema = None  # the default schema, named: the same tables as unnamed
        if schema not in existing:
            try:
                names = inspector.get_table_names(schema=schema)
                existing[schema] = {identity.name(n) for n in names}
            except sa.exc.SQLAlchemyError:
                existing[schema] = set()
        return existing[schema]

    for rev_id in pending_revisions(history, current):
        path = history.get(rev_id).path  # type: ignore[attr-defined]
        if not path:
            continue
        already = []
        for change in table_changes(path):
            names = tables(change.schema)
            name = identity.name(change.name)
            shown = f"{change.schema}.{change.name}" if change.schema else change.name
            if change.action == "create":
                if name in names and not change.conditional:
                    already.append(shown)
                names.add(name)
            elif change.action == "drop":
                names.discard(name)
            elif change.new_name is not None:
                new_name = identity.name(change.new_name)
                if new_name in names and not change.conditional and new_name != name:
                    already.append(
                        f"{change.schema}.{change.new_name}" if change.schema else change.new_name
                    )
                names.discard(name)
                names.add(new_name)
        if already:
            others = _other_version_tables(bind, history, connection, inspector)
            return _error(bind, rev_id, current, already, others)
    return None


def _other_version_tables(
    bind: Bind, history: BindHistory, connection: sa.Connection, inspector: sa.Inspector
) -> list[tuple[str, list[str]]]:
    """The other version tables (a table whose only column is ``version_num``) in the
    schema of ``bind``'s version table, each with the rows that name a revision of
    ``history``: where the database's revision is most likely recorded."""
    schema = bind.version_table_schema
    try:
        columns = inspector.get_multi_columns(schema=schema)
    except sa.exc.SQLAlchemyError:
        return []
    found = []
    for (_, name), table_columns in sorted(columns.items(), key=lambda item: item[0][1]):
        if name == bind.version_table or [c["name"] for c in table_columns] != ["version_num"]:
            continue
        table = sa.table(name, sa.column("version_num"), schema=schema)
        try:
            with connection.begin_nested() if connection.in_transaction() else _no_block():
                rows = connection.execute(sa.select(table.c.version_num)).scalars().all()
        except sa.exc.SQLAlchemyError:
            continue
        known = sorted(str(r) for r in rows if r is not None and history.known(str(r)))
        if known:
            found.append((f"{schema}.{name}" if schema else name, known))
    return found


@contextmanager
def _no_block() -> Iterator[None]:
    yield


def _error(
    bind: Bind,
    rev_id: str,
    current: tuple[str, ...],
    tables: list[str],
    others: list[tuple[str, list[str]]],
) -> VersionTableMismatchError:
    table = (
        f"{bind.version_table_schema}.{bind.version_table}"
        if bind.version_table_schema
        else bind.version_table
    )
    at = ", ".join(current) if current else "no revision"
    shown = ", ".join(repr(t) for t in tables)
    return VersionTableMismatchError(
        f"Bind {bind.name!r}: its version table {table!r} records {at}, but the database "
        f"already has table(s) {shown} that pending revision {rev_id} creates; the version "
        "table is probably misconfigured (a wrong 'version_table' or 'version_table_schema', "
        "or a history started with another tool). Do not upgrade: it would create them again.",
        bind=bind.name,
        revision=rev_id,
        hint=_found_hint(bind, others)
        if others
        else (
            f"Check which version table holds this database's revision in {bind.display_url} "
            f"(compare with ALEMBIC_BINDS[{bind.name!r}]['version_table'] and "
            "'version_table_schema'); only once you are sure which revision the database "
            "matches, record it with ",
            Command("stamp", "--bind", bind.name, "REV"),
            ".",
        ),
    )


def _found_hint(bind: Bind, others: list[tuple[str, list[str]]]) -> Hint:
    """Name the version table(s) that hold revisions of this history."""
    name = others[0][0].rsplit(".", 1)[-1]
    found = "; ".join(f"{t!r} records {', '.join(r)}" for t, r in others)
    return (
        f"In {bind.display_url}, {found}: revisions of this history. Set "
        f"ALEMBIC_BINDS = {{{bind.name!r}: {{'version_table': {name!r}}}}} if that is this "
        "database's version table (",
        Command("adopt"),
        " reads it from the old tool's files), then check again.",
    )
