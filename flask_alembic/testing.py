"""Testing an app's migrations: the harness on fresh databases per bind, and the checks
the pytest plugin runs.

Nothing here imports pytest: :mod:`flask_alembic.pytest_plugin` turns these checks into
tests, and a project may call them from any test runner. The databases come from
:mod:`flask_alembic.scratch` (every one created here and dropped again; the app's own are
never connected to), the schema readings from :mod:`flask_alembic.snapshot`, the app and
its modules from :mod:`flask_alembic.app_imports`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import TYPE_CHECKING

import sqlalchemy as sa
from flask import Flask

from .app_imports import bind_tables
from .app_imports import extension_of
from .app_imports import import_failure
from .app_imports import load_app
from .app_imports import module_of
from .app_imports import registration_in_subprocess
from .app_imports import relative_path
from .app_imports import unregistered_tables
from .errors import Command
from .errors import DEFAULT_GROUP
from .errors import FlaskAlembicError
from .errors import MigrationFailedError
from .identity import backend_of
from .identity import url_key
from .scratch import Databases
from .scratch import parse_servers
from .scratch import refuse_other_databases
from .snapshot import difference
from .snapshot import snapshot

if TYPE_CHECKING:
    from alembic.script import Script

    from .api import AlembicAPI
    from .plan import MigrationResult
    from .plan import Step

__all__ = [
    "CheckFailed",
    "Databases",
    "Migrations",
    "Skipped",
    "Walk",
    "load_app",
    "module_of",
    "parse_servers",
]

_IRREVERSIBLE_HINT = (
    ". A revision that cannot be downgraded says so in its file, irreversible = "
    '"the reason", or sits below a revision named in flask_alembic_minimum_revisions.'
)


_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB/MySQL"}


#: The message of the revision a hint suggests, quoted so that the command runs as shown.
_DESCRIBE = '"describe the change"'


class CheckFailed(AssertionError):
    """A migration check failed; the message names the bind, the revision and its file."""


@dataclass(frozen=True)
class Skipped:
    """A revision whose downgrade was not tested, and why."""

    bind: str
    revision: str
    path: str
    reason: str


# -- the harness ----------------------------------------------------------------------


class Migrations:
    """An app's migrations run on fresh test databases, with the Alembic API's calls
    made in an app context of their own and one revision graph for the whole session.

    While it is open, the extension's calls on this app (``alembic.upgrade()`` in a test)
    reach the test databases; :meth:`close` points them back at the app's own.
    """

    def __init__(
        self,
        app: Flask,
        *,
        servers: Mapping[str, sa.URL] | None = None,
        minimum_revisions: Iterable[str] = (),
        import_path: str | None = None,
        root: str | os.PathLike[str] | None = None,
    ) -> None:
        alembic = extension_of(app)
        self.app = app
        self.alembic: AlembicAPI = alembic
        with app.app_context():
            every = alembic.registry.all
        binds = [b for b in every if b.managed]
        urls = {b.name: b.engine.url for b in every}
        self.binds: tuple[str, ...] = tuple(b.name for b in binds)
        #: The app's own engines: no migration run here may reach them (see _guard).
        self._app_engines = list({id(b.engine): b.engine for b in every}.values())
        self._migrating = False
        unknown = sorted(set(servers or {}) - {"*"} - set(urls))
        if unknown:
            raise FlaskAlembicError(
                f"flask_alembic_servers names {', '.join(map(repr, unknown))}, which the app "
                f"has no bind for; its binds are {', '.join(map(repr, urls))}.",
                bind=unknown[0],
                hint="Spell the bind as the app names it, or write * for every bind.",
            )
        refuse_other_databases(binds, servers or {})
        keys = {b.name: url_key(b.engine.url, b.engine) for b in every}
        self.databases = Databases(urls, servers or {}, keys=keys)
        try:
            alembic._use_engines(app, self.databases.engines)
            self._tables = bind_tables(alembic, app)
            for engine in self._app_engines:
                # Before a new connection is made (an SQLite file would be created), and
                # when a pooled one is handed out.
                sa.event.listen(engine, "do_connect", self._guard)
                sa.event.listen(engine, "checkout", self._guard)
        except BaseException:
            self.databases.close()
            raise
        self._backends = {
            name: (backend_of(url), backend_of(self.databases.url(name)))
            for name, url in urls.items()
        }
        self._minimum = tuple(minimum_revisions)
        self._upgrade: tuple[MigrationResult | None, str | None] | None = None
        self._walks: dict[str, Walk] = {}
        #: Whether the up/down walk also compares schemas (for the no-trace check, which
        #: shares it); the plugin turns it off when that test is not run.
        self.compare_schemas = True
        #: SQLite tables already reflected, by their schema text (see :func:`snapshot`).
        self._reflected: dict[Any, Any] = {}
        self._registration: dict[str, list[str]] | None = None
        #: Where the app came from, for the registration check's own process.
        self.import_path = import_path
        self.root = root

    def close(self) -> None:
        """Point the app back at its own databases and drop the test databases."""
        try:
            for engine in self._app_engines:
                for event in ("do_connect", "checkout"):
                    if sa.event.contains(engine, event, self._guard):
                        sa.event.remove(engine, event, self._guard)
            self.alembic._use_engines(self.app, None)
        finally:
            self.databases.close()

    def _guard(self, *args: Any) -> None:
        """Refuse the app's own database while a migration runs here: a revision that
        reaches it (through Flask-SQLAlchemy's ``db.session``, or an engine of its own
        from the app) would change the real data, not the test database's."""
        if self._migrating:
            raise FlaskAlembicError(
                "A migration reached the app's own database through the app's engine "
                "(db.session or db.engine?), not the test database it runs on.",
                hint="In a revision, use op.get_bind() (or alembic.context) for SQL and "
                "data, never the app's session or engines.",
            )

    @contextlib.contextmanager
    def _running(self) -> Iterator[AlembicAPI]:
        """An app context for a migration, with the app's own engines refused."""
        with self._context() as alembic:
            self._migrating = True
            try:
                yield alembic
            finally:
                self._migrating = False

    def __enter__(self) -> Migrations:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _context(self) -> Iterator[AlembicAPI]:
        with self.app.app_context():
            yield self.alembic

    # -- moving the databases -----------------------------------------------------------

    def reset(self) -> None:
        """Empty every bind's test database."""
        self._upgrade = None
        self.databases.reset()

    def upgrade(
        self, target: str | Sequence[str] = "heads", bind: str | None = None
    ) -> MigrationResult:
        """Upgrade (every bind, or ``bind``) to ``target``, its dependencies included.

        No migration lock is taken: no other process knows the test databases.
        """
        with self._running() as alembic:
            return alembic.upgrade(target, bind, with_dependencies=True, lock=False)

    def downgrade(self, target: str | Sequence[str], bind: str) -> MigrationResult:
        """Downgrade ``bind`` to ``target`` (``"base"``, an id or several ids)."""
        with self._running() as alembic:
            return alembic.downgrade(target, bind, lock=False)

    def migrate_to(self, target: str) -> MigrationResult:
        """Bring one bind to a revision, up or down: ``"analytics@abc123"``, ``"abc123"``
        (its bind is found), ``"analytics@head"``, ``"analytics@base"``, or a step
        count, ``"analytics@+1"`` (the next revision) or ``"analytics@-1"``."""
        bind, revision = self._split(target)
        if revision == "base":
            return self.downgrade("base", bind)
        if revision in ("head", "heads"):
            return self.upgrade("heads", bind)
        if revision[:1] in "+-" and revision[1:].isdigit():
            move = self.upgrade if revision[0] == "+" else self.downgrade
            return move(f"{bind}@{revision}", bind)
        current = self.current(bind)
        with self._context() as alembic:
            full = alembic.show(revision, bind).revision
            below = {
                rev.revision
                for head in current
                for rev in alembic.script.revision_map.iterate_revisions(head, "base")
            }
        if full in below:
            return self.downgrade(full, bind)
        return self.upgrade(full, bind)

    def _split(self, target: str) -> tuple[str, str]:
        name, sep, revision = target.partition("@")
        if sep and name in self.binds:
            return name, revision
        if sep:
            raise FlaskAlembicError(
                f"migrate_to({target!r}): there is no bind {name!r}; the binds are "
                f"{', '.join(map(repr, self.binds))}.",
                bind=name,
                hint="Write BIND@REVISION, e.g. migrate_to('default@head').",
            )
        with self._context() as alembic:
            return alembic.bind_of(target), target

    def current(self, bind: str) -> tuple[str, ...]:
        """The revisions ``bind``'s test database is at."""
        with self._context() as alembic:
            return tuple(s.revision for s in alembic.current(bind))

    # -- reaching the data --------------------------------------------------------------

    @contextlib.contextmanager
    def connect(self, bind: str) -> Iterator[sa.Connection]:
        """A connection to ``bind``'s test database, in a transaction committed at the end."""
        with self.databases.by_bind[bind].engine.begin() as connection:
            yield connection

    def table(self, bind: str, name: str, schema: str | None = None) -> sa.Table:
        """``name`` as it is in ``bind``'s test database now (reflected)."""
        with self.connect(bind) as connection:
            try:
                return sa.Table(name, sa.MetaData(), schema=schema, autoload_with=connection)
            except sa.exc.NoSuchTableError:
                pass
        at = ", ".join(self.current(bind)) or "base (no revision applied)"
        raise FlaskAlembicError(
            f"Bind {bind!r} has no table {name!r} at {at}.",
            bind=bind,
            hint=f"Bring the bind to a revision that has it first: migrate_to('{bind}@REVISION').",
        )

    def insert(
        self, bind: str, table: str, rows: Iterable[Mapping[str, Any]], schema: str | None = None
    ) -> None:
        """Insert ``rows`` into ``table`` as the table is at the current revision; a key
        that is no column of it is refused (rather than silently left out)."""
        reflected = self.table(bind, table, schema)
        values = [dict(row) for row in rows]
        unknown = sorted({key for row in values for key in row} - set(reflected.columns.keys()))
        if unknown:
            at = ", ".join(self.current(bind)) or "base"
            raise FlaskAlembicError(
                f"Table {table!r} of bind {bind!r} has no column "
                f"{', '.join(map(repr, unknown))} at {at}; its columns are "
                f"{', '.join(reflected.columns.keys())}.",
                bind=bind,
                hint="Spell the rows' keys as the table's columns at this revision.",
            )
        with self.connect(bind) as connection:
            connection.execute(reflected.insert(), values)

    def rows(self, bind: str, table: str, schema: str | None = None) -> list[dict[str, Any]]:
        """Every row of ``table`` in ``bind``'s test database, ordered by its primary key."""
        reflected = self.table(bind, table, schema)
        order = list(reflected.primary_key.columns) or list(reflected.columns)
        with self.connect(bind) as connection:
            result = connection.execute(sa.select(reflected).order_by(*order))
            return [dict(row._mapping) for row in result]

    # -- the checks ---------------------------------------------------------------------

    def _describe(self, revision: str) -> str:
        with self._context() as alembic:
            script = alembic.script.get_revision(revision)
        return f"{revision} ({_path(script)})"

    def _elsewhere(self, bind: str) -> str:
        """A note for a failure on SQLite of a bind the app keeps on a server."""
        app, test = self._backends[bind]
        if test != "sqlite" or app == "sqlite":
            return ""
        return (
            f" (bind {bind!r} is tested on SQLite, the app uses {_NAMES.get(app, app)}: "
            "name a server for it in flask_alembic_servers)"
        )

    def _command(self, *args: str) -> str:
        """A command of the app's group, as a hint spells it (quoted for a shell)."""
        import shlex

        group = getattr(self.alembic, "command_name", "") or DEFAULT_GROUP
        return Command(*(a if a.startswith('"') else shlex.quote(a) for a in args)).render(group)

    def check_single_head(self, bind: str) -> None:
        """``bind``'s history has exactly one head."""
        with self._context() as alembic:
            heads = alembic.heads(bind)
        if len(heads) == 1:
            return
        if not heads:
            raise CheckFailed(
                f"bind {bind!r} has no revisions. Write its first: "
                f"{self._command('revision', '--bind', bind, 'initial')}."
            )
        listed = "; ".join(f"{s.revision} ({_path(s)})" for s in heads)
        raise CheckFailed(
            f"bind {bind!r} has {len(heads)} heads: {listed}. Merge them: "
            f"{self._command('merge', '--bind', bind, 'heads')}."
        )

    def upgrade_from_empty(self) -> tuple[MigrationResult | None, str | None]:
        """Every bind upgraded from empty databases to its heads, together, in the
        planner's order; run once, the result kept."""
        if self._upgrade is None:
            self.reset()
            try:
                self._upgrade = (self.upgrade(), None)
            except MigrationFailedError as exc:
                self._upgrade = (exc.result, str(exc))
            except FlaskAlembicError as exc:
                self._upgrade = (None, str(exc))
        return self._upgrade

    def check_upgrade(self, bind: str) -> None:
        """``bind`` reached its heads when every bind was upgraded from empty."""
        result, error = self.upgrade_from_empty()
        if result is None:
            raise CheckFailed(f"bind {bind!r}: the upgrade from empty databases failed: {error}")
        if result.failed is not None:
            first = result.failed
            if first.bind == bind:
                raise CheckFailed(_step_failure(bind, first, result.error) + self._elsewhere(bind))
            mine = next((r for r in result.binds if r.bind == bind), None)
            if mine is None or mine.failed is None:
                heads = self._heads(bind)
                if mine is not None and set(mine.after) == set(heads):
                    return
                raise CheckFailed(
                    f"bind {bind!r} was not upgraded to its heads: the upgrade stopped "
                    f"when bind {first.bind!r} failed at revision {first.revision} "
                    f"({relative_path(first.path or '?')}): {result.error}"
                )
            raise CheckFailed(_step_failure(bind, mine.failed, mine.error) + self._elsewhere(bind))
        if error is not None:
            raise CheckFailed(f"bind {bind!r}: the upgrade from empty databases failed: {error}")

    def _heads(self, bind: str) -> tuple[str, ...]:
        with self._context() as alembic:
            return tuple(s.revision for s in alembic.heads(bind))

    def check_models_match(self, bind: str) -> None:
        """After the upgrade, autogenerate proposes nothing for ``bind``."""
        self.check_upgrade(bind)
        from alembic.autogenerate import render_python_code

        with self._context() as alembic:
            if not alembic.registry.select(bind)[0].has_models:
                return
            ops = alembic.produce_migrations(bind).upgrade_ops
            if ops is None or ops.is_empty():
                return
            code = render_python_code(ops)
        written = "\n".join(
            f"    {line.strip()}"
            for line in code.splitlines()
            if line.strip() and not line.strip().startswith("#")
        )
        heads = ", ".join(self._describe(h) for h in self._heads(bind))
        where = (
            f"the database upgraded to {heads}" if heads else "its empty database (no revisions)"
        )
        raise CheckFailed(
            f"bind {bind!r}: the models differ from {where}; "
            f"autogenerate would write:\n{written}\n"
            f"Write a revision: {self._command('revision', '--bind', bind, _DESCRIBE)}."
        )

    def walk(self, bind: str, *, compare: bool = True) -> Walk:
        """Every revision of ``bind`` upgraded, downgraded and upgraded again, one at a
        time from empty databases; with ``compare``, the schema compared around each
        downgrade. Kept: walked again only to compare what was not compared."""
        walk = self._walks.get(bind)
        if walk is None or (compare and not walk.compared):
            walk = self._walks[bind] = self._walk(bind, compare)
        return walk

    def _walk(self, bind: str, compare: bool) -> Walk:
        walk = Walk(bind, compared=compare)
        with self._context() as alembic:
            scripts = list(reversed(alembic.log(bind=bind)))
            tested = _minimum_filter(scripts, self._minimum, alembic)
        self.reset()
        for script in scripts:
            rev = script.revision
            reason = _irreversible(script)
            try:
                if rev not in tested:
                    walk.skipped.append(Skipped(bind, rev, _path(script), tested.reason(rev)))
                    self.upgrade(rev, bind)
                    continue
                if reason is not None:
                    walk.skipped.append(
                        Skipped(bind, rev, _path(script), f"irreversible: {reason}")
                    )
                    self.upgrade(rev, bind)
                    continue
                self._dependencies_of(script, bind)  # theirs are not this revision's
                schema = self.schema(bind) if compare else {}
                self.upgrade(rev, bind)
                walk.step = "downgrade"
                self.downgrade(_below(script), bind)
                after = self.schema(bind) if compare else {}
                if after != schema:
                    walk.traces.append((rev, _path(script), difference(schema, after)))
                walk.step = "upgrade again"
                self.upgrade(rev, bind)
                walk.step = "upgrade"
            except FlaskAlembicError as exc:
                walk.failure = (rev, _path(script), walk.step, _error_text(exc))
                return walk
            walk.checked.append(rev)
        return walk

    def _dependencies_of(self, script: Script, bind: str) -> None:
        """Upgrade the other binds' revisions ``script`` depends on, so that what they
        create is there before the schema is read (a shared database would show it)."""
        from .plan import to_tuple

        for dependency in to_tuple(script.dependencies):
            with self._context() as alembic:
                found = [s.revision for s in alembic.script.get_revisions(dependency) if s]
                owners = {rev: alembic.bind_of(rev) for rev in found}
            for rev, owner in owners.items():
                if owner != bind:
                    self.upgrade(rev, owner)

    def check_up_down(self, bind: str) -> list[Skipped]:
        """Each revision of ``bind`` upgrades, downgrades and upgrades again."""
        walk = self.walk(bind, compare=self.compare_schemas)
        if walk.failure is not None:
            rev, path, step, error = walk.failure
            raise CheckFailed(
                f"bind {bind!r}: revision {rev} ({path}) failed to {step} "
                f"(up/down/up, one revision at a time from empty): {error}"
                + self._elsewhere(bind)
                + (_IRREVERSIBLE_HINT if step == "downgrade" else "")
            )
        return walk.skipped

    def check_no_trace(self, bind: str) -> list[Skipped]:
        """Downgrading each revision of ``bind`` gives back the schema from before it."""
        walk = self.walk(bind)
        if walk.traces:
            rev, path, diff = walk.traces[0]
            more = (
                f" ({len(walk.traces) - 1} more revisions leave traces)"
                if len(walk.traces) > 1
                else ""
            )
            raise CheckFailed(
                f"bind {bind!r}: downgrading revision {rev} ({path}) does not give back the "
                f"schema from before it{more}:\n{diff}"
            )
        if walk.failure is not None:
            rev, path, _, _ = walk.failure
            raise CheckFailed(
                f"bind {bind!r}: checked up to revision {rev} ({path}) only: it failed "
                "the up/down walk (see the up/down test)."
            )
        return walk.skipped

    def schema(self, bind: str) -> dict[str, Any]:
        """What ``bind``'s test database holds: tables, columns, keys, indexes, views
        (the version table left out), as plain values to compare."""
        with self._context() as alembic:
            b = alembic.registry.select(bind)[0]
        schemas = {None} | {t.schema for m in b.metadatas for t in m.tables.values()}
        with self.connect(bind) as connection:
            return snapshot(
                connection, schemas, (b.version_table_schema, b.version_table), self._reflected
            )

    def registration(self, packages: Iterable[str]) -> dict[str, list[str]]:
        """Tables that importing every module of ``packages`` adds to a bind's models:
        models the app never imports, so its metadata does not know them. Once.

        With :attr:`import_path` set (the app named in the ini file) this runs in a new
        Python process, where nothing but the app has been imported; otherwise here,
        against the tables the app had when this object was made.
        """
        if self._registration is None:
            try:
                if self.import_path is not None:
                    found = registration_in_subprocess(self.import_path, self.root, packages)
                else:
                    found = unregistered_tables(self.app, self.alembic, self._tables, packages)
            except Exception as exc:
                plain = self.import_path or isinstance(exc, ImportError)  # names its module
                error = str(exc) if plain else f"{type(exc).__name__}: {exc}"
                raise CheckFailed(import_failure(packages, error)) from exc
            self._registration = found
        return self._registration

    def check_models_registered(self, bind: str, packages: Iterable[str]) -> None:
        """No model of ``packages`` adds a table to ``bind`` only once its module is imported."""
        missing = self.registration(packages).get(bind)
        if missing:
            heads = ", ".join(self._describe(h) for h in self._heads(bind)) or "no revisions"
            raise CheckFailed(
                f"bind {bind!r} (head {heads}): {'; '.join(missing)}, but the app never "
                "imports it, so autogenerate does not see it (and would drop its table). "
                "Import the module where the app is created."
            )


@dataclass
class Walk:
    """What walking a bind's revisions up, down and up again found."""

    bind: str
    #: Whether the schema was compared around each downgrade (:attr:`traces`).
    compared: bool = True
    checked: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    #: Revisions whose downgrade left the schema changed: (revision, path, difference).
    traces: list[tuple[str, str, str]] = field(default_factory=list)
    #: The revision that failed: (revision, path, step, error).
    failure: tuple[str, str, str, str] | None = None
    step: str = "upgrade"


class _Tested:
    """The revisions whose downgrade is tested: those from each minimum on."""

    def __init__(self, ids: set[str], reasons: dict[str, str]) -> None:
        self.ids = ids
        self.reasons = reasons

    def __contains__(self, rev: object) -> bool:
        return rev in self.ids

    def reason(self, rev: str) -> str:
        return self.reasons.get(rev, "")


def _minimum_filter(scripts: list[Script], minimum: Sequence[str], alembic: AlembicAPI) -> _Tested:
    ids = {s.revision for s in scripts}
    reasons: dict[str, str] = {}
    for wanted in minimum:
        try:
            floor = alembic.script.get_revision(wanted)
        except Exception as exc:  # Alembic's own lookup errors (unknown or ambiguous id)
            raise CheckFailed(
                f"flask_alembic_minimum_revisions names {wanted!r}, which is no revision: {exc}"
            ) from None
        if floor is None or floor.revision not in ids:
            continue  # another bind's
        below = {
            r.revision
            for r in alembic.script.revision_map.iterate_revisions(floor.revision, "base")
        } - {floor.revision}
        for rev in below & ids:
            ids.discard(rev)
            reasons[rev] = f"below the minimum revision {floor.revision}"
    return _Tested(ids, reasons)


def _below(script: Script) -> str:
    """The downgrade target that takes away ``script`` alone: one step down its branch
    (not its siblings'), or for a merge one of its parents (the others stay: they are
    not below it)."""
    from .plan import to_tuple

    parents = to_tuple(script.down_revision)
    if len(parents) > 1:
        return str(parents[0])
    return f"{script.revision}@-1"


def _irreversible(script: Script) -> str | None:
    """The reason a revision gives for not being downgradable (``irreversible = "..."``)."""
    value = getattr(script.module, "irreversible", None)
    if value is None or value is False:
        return None
    return value if isinstance(value, str) and value else "marked irreversible"


def _path(script: Script) -> str:
    return relative_path(script.path)


def _step_failure(bind: str, step: Step, error: str | None) -> str:
    return (
        f"bind {bind!r}: upgrading revision {step.revision} ({relative_path(step.path or '?')}) "
        f"from an empty database failed: {error}"
    )


def _error_text(exc: FlaskAlembicError) -> str:
    result = getattr(exc, "result", None)
    if result is not None and result.error:
        return str(result.error)
    return str(exc)
