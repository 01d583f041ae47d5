"""The Python API of the extension, bound to the current app: thin methods that delegate.

:class:`AlembicAPI` keeps the per-app and per-app-context state and answers every question
the ``flask db`` commands ask; :class:`~flask_alembic.Alembic` adds registering it on an
app (settings, migrations folder, command group). The CLI works against this class, so it
never imports the extension that registers it.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import contextmanager
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from typing import Literal
from typing import overload
from typing import TYPE_CHECKING
from typing import TypeAlias
from typing import TypedDict
from typing import Unpack

import sqlalchemy as sa
from flask import current_app
from flask import Flask
from flask import g

from . import config
from . import migrate as migration
from .errors import Command
from .errors import ConfigurationError
from .errors import LintRefusedError
from .errors import RevisionError
from .errors import VersionTableMismatchError
from .identity import Identities
from .loader import Loader
from .plan import Direction
from .plan import MigrationResult
from .plan import Plan
from .plan import Target
from .plan import to_tuple
from .registry import Bind
from .registry import BindRegistry
from .registry import build_registry
from .registry import EnginesArg
from .registry import MetadatasArg
from .status import BindStatus
from .status import current_heads
from .status import read_status

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.operations import Operations
    from alembic.operations.ops import MigrationScript
    from alembic.runtime.environment import EnvironmentContext
    from alembic.runtime.migration import MigrationContext
    from alembic.script import Script
    from alembic.script import ScriptDirectory

    from .adopt import Adoption
    from .executor import EventCallback
    from .lint import LintReport
    from .writer import RevisionOptions
    from .writer import WrittenRevisions

__all__ = ["AlembicAPI", "BindArg", "RunOptions"]

#: Which binds a method acts on: one name, several, or ``None`` for every managed bind.
BindArg = str | Iterable[str] | None
#: A revision or target: an id, a symbol, a count of steps (``-1``), a ``Script``, or
#: (as Flask-Alembic 3 took them) a list of one of these.
RevisionArg: TypeAlias = "str | int | Script | Sequence[str | Script]"


class RunOptions(TypedDict, total=False):
    """How ``upgrade``, ``downgrade`` and ``stamp`` run (ignored with ``sql=True``)."""

    #: Take each involved database's migration lock (default ``True``).
    lock: bool
    #: Seconds to wait for a lock; default ``ALEMBIC_LOCK_TIMEOUT``, else 300.
    lock_timeout: float | None
    #: How many independent binds may migrate at once; default ``ALEMBIC_PARALLEL``, else 4.
    parallel: int | None
    #: Called with each progress event while the plan runs.
    on_event: EventCallback | None
    #: Called with the plan once the locks are held, before any step runs (an upgrade to
    #: heads with nothing to do takes no lock: its empty plan comes without).
    on_plan: Callable[[Plan], None] | None
    #: Called, before ``on_plan``, with the lint findings of an upgrade plan's revisions
    #: (unless ``ALEMBIC_LINT`` is ``"off"``; not called for a plan with no steps).
    on_lint: Callable[[LintReport], None] | None


# The private holders below are plain classes, not dataclasses: a dataclass costs about
# a millisecond to define, and every `flask` command of the app pays for it at import.


class _AppState:
    """What the extension keeps per app (never on ``self``: one extension, many apps)."""

    __slots__ = ("app", "loader", "registry")

    def __init__(self, app: weakref.ReferenceType[Flask]) -> None:
        self.app = app
        self.registry: BindRegistry | None = None
        #: One loader shared by every app context (:mod:`flask_alembic.testing`: the
        #: revision graph loaded once per test session); ``None``: one per app context.
        self.loader: Loader | None = None


class _ContextState:
    """What the extension keeps per app context: the loaded scripts, the databases'
    identities, and the connections the accessors opened (closed at teardown)."""

    __slots__ = ("connections", "environments", "exit_stack", "identities", "loader")

    def __init__(self, loader: Loader) -> None:
        self.loader = loader
        #: Each database's identity, as its server gave it during this app context.
        self.identities = Identities()
        self.connections: dict[str, sa.Connection] = {}
        self.environments: dict[str, EnvironmentContext] = {}
        self.exit_stack = ExitStack()


class AlembicAPI:
    """Alembic migrations for the current Flask app, with one database or several.

    :param metadatas: the models' metadata: one ``MetaData``, a list, or a dict of bind
        name to ``MetaData`` or list. Found automatically with Flask-SQLAlchemy.
    :param engines: one ``Engine`` or a dict of bind name to ``Engine``. Found
        automatically with Flask-SQLAlchemy and Flask-SQLAlchemy-Lite.
    """

    def __init__(
        self, *, metadatas: MetadatasArg | None = None, engines: EnginesArg | None = None
    ) -> None:
        self.metadatas = metadatas
        self.engines = engines
        self._states: weakref.WeakKeyDictionary[Flask, _AppState] = weakref.WeakKeyDictionary()

    # -- state --------------------------------------------------------------------------

    def _register(self, app: Flask) -> None:
        self._states[app] = _AppState(app=weakref.ref(app))
        app.teardown_appcontext(self._teardown)

    def _state(self) -> _AppState:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        try:
            return self._states[app]
        except KeyError:
            raise RuntimeError(
                "The current Flask app is not registered with this 'flask_alembic.Alembic' "
                "instance. Did you forget to call 'init_app', or create a different instance?"
            ) from None

    def _teardown(self, exc: BaseException | None) -> None:
        state: _ContextState | None = g.pop("_flask_alembic", None)
        if state is not None:
            state.exit_stack.close()

    def _context(self) -> _ContextState:
        state: _ContextState | None = g.get("_flask_alembic")
        if state is None:
            app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
            shared = self._state().loader
            state = _ContextState(Loader(app, self.registry) if shared is None else shared)
            g._flask_alembic = state
        return state

    @property
    def _loader(self) -> Loader:
        return self._context().loader

    @property
    def _identities(self) -> Identities:
        return self._context().identities

    def secrets(self) -> tuple[str, ...]:
        """Every spelling of the app's database passwords, to keep out of output.

        Empty when the binds could not be loaded (an error then names no URL).
        """
        registry = self._state().registry
        if registry is None:
            return ()
        return tuple(secret for bind in registry.all for secret in bind.secrets)

    # -- binds and configuration -------------------------------------------------------

    @property
    def registry(self) -> BindRegistry:
        """The app's binds. Needs an app context."""
        state = self._state()
        if state.registry is None:
            app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
            config.check_script_location(app)
            state.registry = build_registry(app, engines=self.engines, metadatas=self.metadatas)
        return state.registry

    def _use_engines(self, app: Flask, engines: Mapping[str, sa.Engine] | None) -> None:
        """Point ``app``'s binds at ``engines`` (every bind named) and share one loader
        between its app contexts; ``None`` goes back to the app's own engines.

        For :mod:`flask_alembic.testing`: the tests' own databases, one graph per session.
        """
        state = self._states[app]
        if engines is None:
            state.registry = state.loader = None
            return
        with app.app_context():
            config.check_script_location(app)
            registry = build_registry(app, engines=dict(engines), metadatas=self.metadatas)
        state.registry = registry
        state.loader = Loader(app, registry, keep_modules=True)

    @property
    def config(self) -> Config:
        """An Alembic ``Config`` for the current app, built from ``ALEMBIC``."""
        return self._loader.config

    def _select(self, bind: BindArg, *, unmanaged: bool = False) -> list[Bind]:
        return self.registry.select(bind, unmanaged=unmanaged)

    # -- scripts --------------------------------------------------------------------------

    @property
    def script_directory(self) -> ScriptDirectory:
        """Alembic's ``ScriptDirectory`` holding every bind's revisions."""
        return self._loader.script_directory

    script = script_directory

    def bind_of(self, revision: str | Script) -> str:
        """The name of the bind a revision belongs to."""
        return self._loader.bind_of(revision)

    # -- accessors ----------------------------------------------------------------------

    def _connection(self, bind: Bind) -> sa.Connection:
        state = self._context()
        if bind.name not in state.connections:
            connection = state.exit_stack.enter_context(bind.connect())
            state.identities.read(bind.engine, connection)
            state.connections[bind.name] = connection
        return state.connections[bind.name]

    def _environment(self, name: str) -> EnvironmentContext:
        state = self._context()
        if name not in state.environments:
            from alembic.runtime.environment import EnvironmentContext

            from .environment import context_options

            runtime = state.loader.runtimes[name]
            env = EnvironmentContext(runtime.config, runtime.script)
            connection = self._connection(runtime.bind)
            names = self.registry.neighbourhood(runtime.bind, state.identities)
            env.configure(connection=connection, **context_options(runtime.bind, names))
            state.environments[name] = env
        return state.environments[name]

    @property
    def environment_contexts(self) -> Mapping[str, EnvironmentContext]:
        """Each bind's configured ``EnvironmentContext``, by bind name."""
        return _LazyMapping(self.registry, self._environment)

    @property
    def migration_contexts(self) -> Mapping[str, MigrationContext]:
        """Each bind's ``MigrationContext``, connected to that bind's database."""
        return _LazyMapping(self.registry, lambda name: self._environment(name).get_context())

    @property
    def ops(self) -> Mapping[str, Operations]:
        """Each bind's ``Operations`` (``op``), bound to that bind's database."""
        from alembic.operations import Operations

        return _LazyMapping(self.registry, lambda name: Operations(self.migration_contexts[name]))

    @property
    def environment_context(self) -> EnvironmentContext:
        """The default bind's ``EnvironmentContext``."""
        return self._environment(self.registry.default.name)

    env = environment_context

    @property
    def migration_context(self) -> MigrationContext:
        """The default bind's ``MigrationContext``."""
        return self.environment_context.get_context()

    context = migration_context

    @property
    def op(self) -> Operations:
        """Alembic operations (``op``) on the default bind's database."""
        return self.ops[self.registry.default.name]

    # -- reading state ------------------------------------------------------------------

    def current(self, bind: BindArg = None) -> tuple[Script, ...]:
        """The revisions each selected bind's database is at."""
        binds = self._select(bind)
        loader = self._loader
        histories = loader.histories
        heads = current_heads(loader, self._identities, binds)
        result: list[Script] = []
        for b in binds:
            histories[b.name].check_heads(heads[b.name], loader.owner_of)
            result.extend(loader.scripts(heads[b.name]))
        return tuple(result)

    def heads(
        self, bind: BindArg | bool = None, *, resolve_dependencies: bool = False
    ) -> tuple[Script, ...]:
        """The latest revisions of each selected bind's history.

        :param resolve_dependencies: leave out a head that another revision of its bind
            depends on (``heads(True)``, as Flask-Alembic 3 spelled it, works too).
        """
        from .history import revision_ids

        if isinstance(bind, bool):  # Flask-Alembic 3: heads(resolve_dependencies)
            resolve_dependencies = bind
            bind = None
        histories = self._loader.histories
        ids = [
            rev
            for b in self._select(bind)
            for rev in (
                revision_ids(histories[b.name].revision_map, "heads")
                if resolve_dependencies
                else histories[b.name].heads
            )
        ]
        return self._loader.scripts(ids)

    def branches(self, bind: BindArg = None) -> tuple[Script, ...]:
        """Revisions with more than one child (branch points)."""
        from . import history

        histories = self._loader.histories
        ids = [rev for b in self._select(bind) for rev in history.branch_points(histories[b.name])]
        return self._loader.scripts(ids)

    def log(
        self, start: RevisionArg = "base", end: RevisionArg = "heads", bind: BindArg = None
    ) -> list[Script]:
        """Revisions from ``end`` down to ``start``, newest first, per bind.

        ``start`` or ``end`` may be ``"current"``: each bind's current revision(s).
        """
        from . import history

        histories = self._loader.histories
        binds = self._select(bind)
        selected = [histories[b.name] for b in binds]
        lower, upper = _target(start), _target(end)
        if "current" in (lower, upper):
            current = current_heads(self._loader, self._identities, binds)
            ids = []
            for h in selected:
                here: str | tuple[str, ...] = tuple(current[h.name]) or "base"
                ids += history.log_ids(
                    h,
                    here if lower == "current" else str(lower),  # type: ignore[arg-type]
                    here if upper == "current" else str(upper),  # type: ignore[arg-type]
                )
        else:
            ids = [
                rev
                for h, low, up in history.log_ranges(selected, str(lower), str(upper))
                for rev in history.log_ids(h, low, up)
            ]
        return list(self._loader.scripts(ids))

    def show(self, revision: str, bind: BindArg = None) -> Script:
        """One revision, looked up among the selected binds."""
        from . import history

        histories = self._loader.histories
        _, rev_id = history.show_id([histories[b.name] for b in self._select(bind)], revision)
        return self.script_directory.get_revision(rev_id)

    def status(self, bind: BindArg = None) -> list[BindStatus]:
        """Where each selected bind stands; a failing bind does not hide the others.

        Binds that are not managed are listed too, with the reason, and never connected to.
        """
        binds = self._select(bind, unmanaged=True)
        return read_status(self._loader, self._identities, binds)

    def applied(
        self, bind: BindArg = None, *, statuses: Sequence[BindStatus] | None = None
    ) -> set[str]:
        """The ids of the revisions applied on their databases (unreachable binds: none).

        :param statuses: the binds' rows from :meth:`status`, when read already.
        """
        histories = self._loader.histories
        result: set[str] = set()
        for row in self.status(bind) if statuses is None else statuses:
            # A pending bind's warning about its version table does not hide its revision.
            if row.managed and (
                row.error is None or isinstance(row.error, VersionTableMismatchError)
            ):
                result |= histories[row.bind].applied(row.current)
        return result

    def needs_upgrade(self, bind: BindArg = None) -> bool:
        """Whether any selected bind's database is behind its heads."""
        rows = self.status(bind)
        for row in rows:
            if row.error is not None:
                raise row.error
        return any(row.pending for row in rows)

    # -- comparing models with databases ------------------------------------------------

    @contextmanager
    def _installed(
        self, name: str, x_arguments: Sequence[str] | None = None
    ) -> Iterator[MigrationContext]:
        """Bind ``name``'s migration context, with its environment installed as
        ``alembic.context`` for the block, so that hooks in the context options (an
        ``include_object`` reading ``context.get_x_argument()``) work as under an env.py."""
        env = self._environment(name)
        if x_arguments:
            from alembic.runtime.environment import EnvironmentContext

            from .environment import context_options
            from .environment import with_x_arguments

            state = self._context()
            runtime = state.loader.runtimes[name]
            env = EnvironmentContext(with_x_arguments(runtime.config, x_arguments), runtime.script)
            names = self.registry.neighbourhood(runtime.bind, state.identities)
            connection = self._connection(runtime.bind)
            env.configure(connection=connection, **context_options(runtime.bind, names))
        with env:
            yield env.get_context()

    def compare_metadata(
        self, bind: BindArg = None, *, x_arguments: Sequence[str] | None = None
    ) -> list[Any]:
        """The differences between the models and the databases, as Alembic diff tuples.

        A bind without models is not compared: its whole database would differ.
        ``x_arguments`` reach the context options' hooks through
        ``alembic.context.get_x_argument()``, as with ``revision``.
        """
        from alembic.autogenerate import compare_metadata

        result: list[Any] = []
        for b in self._select(bind):
            if not b.has_models:
                continue
            # Alembic accepts a list of MetaData here, though its annotation says one.
            metadata: Any = b.target_metadata
            with self._installed(b.name, x_arguments) as context:
                result.extend(compare_metadata(context, metadata))
        return result

    def produce_migrations(self, bind: str | None = None) -> MigrationScript:
        """The operations that would bring the databases in line with their models.

        For one bind (``bind``, or the only bind with models): that bind's script. With
        several binds with models and no ``bind``, one script holding each bind's
        operations, as Flask-Alembic 3 made it: ``script.upgrade_ops_list`` has one entry
        per bind, its ``upgrade_token`` being ``"<bind>_upgrades"``.
        """
        from alembic.autogenerate import produce_migrations

        if bind is not None:
            binds = [self.registry[bind]]
        else:
            binds = [b for b in self.registry if b.has_models] or [self.registry.default]
        for b in binds:
            if not b.has_models:
                raise ConfigurationError(
                    f"Bind {b.name!r} has no models to compare with (its metadata has no "
                    "tables); comparing would propose dropping every table of its database.",
                    bind=b.name,
                    hint="Define its models and import them first, or pass them with "
                    "Alembic(metadatas={...}).",
                )
        scripts = []
        for b in binds:
            metadata: Any = b.target_metadata
            with self._installed(b.name) as context:
                scripts.append(produce_migrations(context, metadata))
        if len(scripts) == 1:
            return scripts[0]
        combined = scripts[0]
        upgrades = []
        downgrades = []
        for b, script in zip(binds, scripts, strict=True):
            up, down = script.upgrade_ops_list[0], script.downgrade_ops_list[0]
            up.upgrade_token = f"{b.name}_upgrades"
            down.downgrade_token = f"{b.name}_downgrades"
            upgrades.append(up)
            downgrades.append(down)
        combined.upgrade_ops = upgrades
        combined.downgrade_ops = downgrades
        return combined

    def needs_revision(
        self, bind: BindArg = None, *, x_arguments: Sequence[str] | None = None
    ) -> bool:
        """Whether any selected bind's models differ from its database."""
        return bool(self.compare_metadata(bind, x_arguments=x_arguments))

    # -- writing revisions --------------------------------------------------------------

    def rev_id(self) -> str:
        """A new random revision id.

        Override it (in a subclass, or by assigning a function to the instance) to choose
        the ids of new revisions and merges, as with Flask-Alembic 3.
        """
        from alembic.util import rev_id

        return rev_id()

    def _rev_id_factory(self) -> Callable[[], str] | None:
        """``self.rev_id`` when the app replaced it; ``None`` lets Alembic choose."""
        if "rev_id" in vars(self) or type(self).rev_id is not AlembicAPI.rev_id:
            return self.rev_id
        return None

    def mkdir(self) -> Path:
        """Create the script directory from the template, or restore its missing files,
        and the folders named in ``ALEMBIC['version_locations']``."""
        from .writer import make_script_directory

        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        config.check_script_location(app)
        location = make_script_directory(config.script_location(app), fill=True)
        for folder in config.extra_locations(app):
            folder.mkdir(parents=True, exist_ok=True)
        return location

    def revision(
        self,
        message: str,
        empty: bool = False,
        branch: str | None = None,
        parent: RevisionArg | None = None,
        splice: bool = False,
        depend: RevisionArg | Iterable[RevisionArg] | None = None,
        label: str | Iterable[str] | None = None,
        path: str | os.PathLike[str] | None = None,
        rev_id: str | None = None,
        bind: BindArg = None,
        *,
        x_arguments: Sequence[str] | None = None,
    ) -> list[Script]:
        """Write new revision files, autogenerated from the models unless ``empty``.

        With several binds, one revision is written per bind whose models changed.
        Returns the new scripts (an empty list when nothing changed).

        ``x_arguments`` (``["key=value", ...]``, the ``-x`` options of the command line)
        reach autogenerate's hooks, such as ``include_object``, through
        ``alembic.context.get_x_argument()``.

        :param branch: a bind's name selects that bind. Any other name is Flask-Alembic
            3's independent branch, in the default bind (or the one bind given): its first
            revision starts at base labelled ``branch``, later ones extend ``branch@head``.
        :param depend: revisions the new ones depend on. A target naming a bind's heads
            (``"default@head"``) names the new revision this call writes for that bind, if
            any, written (and returned) first. A new revision never depends on itself or
            on a revision it builds on: those are left out of its ``depends_on``.
        """
        depends = None
        if depend is not None:
            items = [depend] if isinstance(depend, str | int) or _is_script(depend) else depend
            depends = [str(_target(item)) for item in items]  # type: ignore[union-attr]
        written = self.write_revisions(
            message,
            empty=empty,
            parent=None if parent is None else str(_target(parent)),
            splice=splice,
            depend=depends,
            label=label,
            path=path,
            rev_id=rev_id,
            bind=bind,
            branch=branch,
            x_arguments=x_arguments,
        )
        return written.scripts

    def write_revisions(
        self, message: str, *, bind: BindArg = None, **options: Unpack[RevisionOptions]
    ) -> WrittenRevisions:
        """As :meth:`revision`, but say what each file was generated from (and what it
        destroys), and why a selected bind got no file."""
        from .history import resolve_target
        from .writer import write_revisions

        loader = self._loader
        parent = options.get("parent")
        branch = options.pop("branch", None)
        # A bind's own branch: --branch NAME is --bind NAME.
        if branch in self.registry.names and list(to_tuple(bind)) in ([], [branch]):
            bind, branch = branch, None
        if branch is not None:
            options["branch"] = branch
            if bind is None:
                bind = self.registry.default.name
        if parent is not None and bind is None and parent not in {"head", "heads"}:
            histories = list(loader.histories.values())
            bind = next(iter(resolve_target(parent, histories, direction="upgrade")))
        if options.get("rev_id") is None:
            options.setdefault("new_rev_id", self._rev_id_factory())
        return write_revisions(loader, self._identities, self._select(bind), message, **options)

    def merge(
        self,
        revisions: RevisionArg | Iterable[RevisionArg] = "heads",
        message: str | None = None,
        label: str | Iterable[str] | None = None,
        rev_id: str | None = None,
        bind: str | None = None,
    ) -> Script:
        """Write a revision that merges several heads of one bind into one."""
        from .writer import write_merge

        if rev_id is None:
            factory = self._rev_id_factory()
            rev_id = None if factory is None else factory()
        tokens: list[Any] = (
            [revisions]
            if isinstance(revisions, str | int) or _is_script(revisions)
            else list(revisions)  # type: ignore[arg-type]
        )
        return write_merge(
            self._loader,
            bind,
            [str(_target(token)) for token in tokens],
            message=message,
            label=label,
            rev_id=rev_id,
        )

    # -- adopting a project ---------------------------------------------------------------

    def adopt(self, path: str | os.PathLike[str] | None = None, *, plan: bool = False) -> Adoption:
        """Adopt a project from Flask-Migrate, Flask-Alembic 3 or Alembic; runs no migration.

        Finds the old tool's files (in ``path``, else where that tool looks), works out
        the settings to use and checks every bind's state before and after.

        :param path: the old migrations folder, or an ``alembic.ini``.
        :param plan: read and check everything, change nothing.
        """
        from .adopt import adopt

        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        result = adopt(
            app,
            engines=self.engines,
            metadatas=self.metadatas,
            source=None if path is None else Path(path),
            plan=plan,
        )
        state: _ContextState | None = g.get("_flask_alembic")
        if state is not None and not plan:
            state.loader.refresh()  # a converted history has new files
        return result

    # -- running migrations -------------------------------------------------------------

    def plan(
        self,
        direction: Direction,
        target: RevisionArg,
        bind: BindArg = None,
        *,
        with_dependencies: bool = False,
        purge: bool = False,
        current: Mapping[str, tuple[str, ...]] | None = None,
        offline: bool = False,
    ) -> Plan:
        """The plan ``upgrade``/``downgrade``/``stamp`` would run, without running it."""
        request = self._request(direction, target, bind, with_dependencies, purge)
        return migration.make_plan(
            self._loader, self._identities, request, current=current, offline=offline
        )

    def _request(
        self,
        direction: Direction,
        target: RevisionArg,
        bind: BindArg,
        with_dependencies: bool = False,
        purge: bool = False,
    ) -> migration.Request:
        return migration.Request(
            direction,
            _target(target),
            self._select(bind),
            explicit=bind is not None,
            with_dependencies=with_dependencies,
            purge=purge,
        )

    @overload
    def upgrade(
        self,
        target: RevisionArg = ...,
        bind: BindArg = ...,
        *,
        sql: Literal[False] = ...,
        tag: str | None = ...,
        x_arguments: Sequence[str] | None = ...,
        with_dependencies: bool = ...,
        **options: Unpack[RunOptions],
    ) -> MigrationResult: ...
    @overload
    def upgrade(
        self,
        target: RevisionArg = ...,
        bind: BindArg = ...,
        *,
        sql: Literal[True],
        tag: str | None = ...,
        x_arguments: Sequence[str] | None = ...,
        with_dependencies: bool = ...,
        **options: Unpack[RunOptions],
    ) -> dict[str, str]: ...
    def upgrade(
        self,
        target: RevisionArg = "heads",
        bind: BindArg = None,
        *,
        sql: bool = False,
        tag: str | None = None,
        x_arguments: Sequence[str] | None = None,
        with_dependencies: bool = False,
        **options: Unpack[RunOptions],
    ) -> MigrationResult | dict[str, str]:
        """Upgrade the selected binds to ``target`` (default: every bind to its heads).

        With ``sql=True`` nothing runs and no lock is taken; the SQL per bind is returned.
        Otherwise each involved database's migration lock is held while its current
        revision is read, the plan made (``on_plan`` sees it) and run. ``tag`` and
        ``x_arguments`` (``["key=value", ...]``, the ``-x`` options of the command line)
        reach the migrations as ``context.get_tag_argument()`` and
        ``context.get_x_argument()``.
        """
        if sql:
            return self._offline_sql(
                "upgrade",
                target,
                bind,
                tag=tag,
                x_arguments=x_arguments,
                with_dependencies=with_dependencies,
            )
        return self.migrate(
            "upgrade",
            target,
            bind,
            tag=tag,
            x_arguments=x_arguments,
            with_dependencies=with_dependencies,
            **options,
        )

    @overload
    def downgrade(
        self,
        target: RevisionArg = ...,
        bind: BindArg = ...,
        *,
        sql: Literal[False] = ...,
        tag: str | None = ...,
        x_arguments: Sequence[str] | None = ...,
        **options: Unpack[RunOptions],
    ) -> MigrationResult: ...
    @overload
    def downgrade(
        self,
        target: RevisionArg = ...,
        bind: BindArg = ...,
        *,
        sql: Literal[True],
        tag: str | None = ...,
        x_arguments: Sequence[str] | None = ...,
        **options: Unpack[RunOptions],
    ) -> dict[str, str]: ...
    def downgrade(
        self,
        target: RevisionArg = -1,
        bind: BindArg = None,
        *,
        sql: bool = False,
        tag: str | None = None,
        x_arguments: Sequence[str] | None = None,
        **options: Unpack[RunOptions],
    ) -> MigrationResult | dict[str, str]:
        """Downgrade the selected binds to ``target`` (default: one step; name a bind).

        ``sql`` and the other options are those of :meth:`upgrade`.
        """
        if sql:
            return self._offline_sql("downgrade", target, bind, tag=tag, x_arguments=x_arguments)
        return self.migrate("downgrade", target, bind, tag=tag, x_arguments=x_arguments, **options)

    @overload
    def stamp(
        self,
        target: RevisionArg = ...,
        bind: BindArg = ...,
        *,
        sql: Literal[False] = ...,
        tag: str | None = ...,
        purge: bool = ...,
        **options: Unpack[RunOptions],
    ) -> MigrationResult: ...
    @overload
    def stamp(
        self,
        target: RevisionArg = ...,
        bind: BindArg = ...,
        *,
        sql: Literal[True],
        tag: str | None = ...,
        purge: bool = ...,
        **options: Unpack[RunOptions],
    ) -> dict[str, str]: ...
    def stamp(
        self,
        target: RevisionArg = "heads",
        bind: BindArg = None,
        *,
        sql: bool = False,
        tag: str | None = None,
        purge: bool = False,
        **options: Unpack[RunOptions],
    ) -> MigrationResult | dict[str, str]:
        """Record ``target`` in the version tables without running any migration.

        ``purge`` empties each version table first. ``sql`` and the other options are
        those of :meth:`upgrade`.
        """
        if sql:
            return self._offline_sql("stamp", target, bind, tag=tag, purge=purge)
        return self.migrate("stamp", target, bind, tag=tag, purge=purge, **options)

    def _offline_sql(
        self,
        direction: Direction,
        target: RevisionArg,
        bind: BindArg,
        *,
        tag: str | None,
        x_arguments: Sequence[str] | None = None,
        purge: bool = False,
        with_dependencies: bool = False,
    ) -> dict[str, str]:
        request = self._request(direction, target, bind, with_dependencies, purge)
        target, current = migration.offline_range(self._loader, request)
        plan = migration.make_plan(
            self._loader,
            self._identities,
            request.aiming_at(target),
            current=current,
            offline=True,
        )
        return migration.render_sql(self._loader, plan, tag=tag, x_arguments=x_arguments)

    def migrate(
        self,
        direction: Direction,
        target: RevisionArg,
        bind: BindArg = None,
        *,
        with_dependencies: bool = False,
        purge: bool = False,
        on_wait: Callable[[Bind], None] | None = None,
        tag: str | None = None,
        x_arguments: Sequence[str] | None = None,
        lock: bool = True,
        lock_timeout: float | None = None,
        parallel: int | None = None,
        on_event: EventCallback | None = None,
        on_plan: Callable[[Plan], None] | None = None,
        on_lint: Callable[[LintReport], None] | None = None,
    ) -> MigrationResult:
        """Lock, plan and run in one go: what ``upgrade``/``downgrade``/``stamp`` do.

        An upgrade's revisions are linted once the plan is made, unless ``ALEMBIC_LINT``
        is ``"off"``: ``on_lint`` sees the findings, and with ``"refuse"`` an unaccepted
        error finding raises :class:`~flask_alembic.errors.LintRefusedError` before any
        step runs on any bind.
        """
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        request = self._request(direction, target, bind, with_dependencies, purge)
        workers = config.parallel(app, parallel)  # a bad setting fails even with nothing to do
        check = self._lint_check(app, on_lint, tag=tag, x_arguments=x_arguments)
        return migration.migrate(
            self._loader,
            self._identities,
            request,
            parallel=workers,
            lock_timeout=config.lock_timeout(app, lock_timeout),
            lock=lock,
            on_plan=on_plan,
            on_event=on_event,
            on_wait=on_wait,
            tag=tag,
            x_arguments=x_arguments,
            check=check,
        )

    def _lint_check(
        self,
        app: Flask,
        on_lint: Callable[[LintReport], None] | None,
        *,
        tag: str | None = None,
        x_arguments: Sequence[str] | None = None,
    ) -> Callable[[Plan], None] | None:
        """What checks a plan before it runs, by ``ALEMBIC_LINT``: nothing when the
        findings would go nowhere (``"off"``, or ``"warn"`` with no ``on_lint``).

        ``"refuse"`` refuses an unaccepted error finding, and an unaccepted
        ``offline-failure``: what a revision does after it was not seen.
        """
        mode = config.lint_mode(app)  # a bad setting fails even with nothing to do
        if mode == "off" or (mode == "warn" and on_lint is None):
            return None

        def check(plan: Plan) -> None:
            if plan.direction != "upgrade":
                return
            report = self.lint_plan(plan, tag=tag, x_arguments=x_arguments)
            if on_lint is not None:
                on_lint(report)
            refused = [
                f
                for f in report.open(("error", "warning"))
                if f.severity == "error" or f.rule == "offline-failure"
            ]
            if mode == "refuse" and refused:
                raise LintRefusedError.for_findings(refused)

        return check

    def write_sql(
        self, statements: Mapping[str, str], directory: str | os.PathLike[str]
    ) -> list[Path]:
        """Write offline SQL into ``directory``, one ``BIND.sql`` file per bind."""
        return migration.write_sql(statements, directory)

    def run_plan(
        self,
        plan: Plan,
        *,
        tag: str | None = None,
        x_arguments: Sequence[str] | None = None,
        lock: bool = True,
        lock_timeout: float | None = None,
        parallel: int | None = None,
        on_event: EventCallback | None = None,
        on_lint: Callable[[LintReport], None] | None = None,
    ) -> MigrationResult:
        """Run a plan made by :meth:`plan`; raises ``MigrationFailedError`` on failure.

        If a bind moved since the plan was made (another process migrated it), nothing
        more runs on it and ``PlanError`` says so: make a new plan. ``ALEMBIC_LINT`` and
        ``on_lint`` act as for :meth:`migrate`.
        """
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        timeout = config.lock_timeout(app, lock_timeout)
        check = self._lint_check(app, on_lint, tag=tag, x_arguments=x_arguments)
        return migration.run_plan(
            self._loader,
            self._identities,
            plan,
            parallel=config.parallel(app, parallel),
            lock_timeout=timeout,
            on_event=on_event,
            tag=tag,
            x_arguments=x_arguments,
            lock=lock,
            check=check,
        )

    # -- linting --------------------------------------------------------------------------

    def lint(
        self,
        *revisions: str | os.PathLike[str],
        bind: BindArg = None,
        all: bool = False,
        tag: str | None = None,
        x_arguments: Sequence[str] | None = None,
    ) -> LintReport:
        """Find unsafe migrations: each revision runs in offline mode for its bind's
        dialect, and its operations and their SQL are checked against the rules.

        By default the revisions ``upgrade`` would run on each selected bind (their
        current revisions are read); ``all=True`` lints every revision of those binds;
        named ``revisions`` (ids, prefixes, symbols such as ``"stats@head"``, or paths
        of revision files) lint those. ``tag`` and ``x_arguments`` reach the revisions
        as in ``upgrade``.
        """
        loader = self._loader
        names = [b.name for b in self._select(bind)]
        wanted: dict[str, list[str]] = {name: [] for name in names}
        if revisions and all:
            raise RevisionError(
                "Name revisions to lint, or lint them all, not both.",
                hint="Drop the revisions, or drop --all.",
            )
        if revisions:
            for spelled in revisions:
                owner, rev_id = self._lint_target(spelled, names, explicit=bind is not None)
                if rev_id not in wanted.setdefault(owner, []):
                    wanted[owner].append(rev_id)
        elif all:
            for name in names:
                view = loader.runtimes[name].script
                ordered = reversed(list(view.walk_revisions("base", "heads")))
                wanted[name] = [script.revision for script in ordered]
        else:
            for step in self.plan("upgrade", "heads", bind).steps:
                if step.revision is not None:
                    wanted[step.bind].append(step.revision)
        return self._lint(wanted, tag=tag, x_arguments=x_arguments)

    def lint_plan(
        self, plan: Plan, *, tag: str | None = None, x_arguments: Sequence[str] | None = None
    ) -> LintReport:
        """The findings of the revisions an upgrade ``plan`` runs (a downgrade runs
        ``downgrade()`` functions, which are not linted: the report is empty)."""
        wanted: dict[str, list[str]] = {}
        if plan.direction == "upgrade":
            for step in plan.steps:
                if step.revision is not None:
                    wanted.setdefault(step.bind, []).append(step.revision)
        return self._lint(wanted, tag=tag, x_arguments=x_arguments)

    def _lint_target(
        self, spelled: str | os.PathLike[str], names: Sequence[str], *, explicit: bool
    ) -> tuple[str, str]:
        """The bind and full id of a revision named on ``lint``'s command line: by id,
        prefix or symbol, or by its file's path."""
        from .loader import command_error

        loader = self._loader
        if isinstance(spelled, os.PathLike) or spelled.endswith(".py"):
            by_path = loader.revision_at(Path(spelled))
            if by_path is None:
                raise RevisionError(
                    f"{os.fspath(spelled)!r} is not a revision file of any bind.",
                    revision=None,
                    path=os.fspath(spelled),
                    hint=("Run ", Command("log", "-v"), " to see each revision's file."),
                )
            spelled = by_path
        try:
            found = loader.script_directory.get_revisions(spelled)
        except command_error() as exc:
            raise RevisionError(
                f"Cannot lint {spelled!r}: {exc}",
                revision=spelled,
                hint=("Run ", Command("log"), " to see the revisions."),
            ) from None
        scripts = [s for s in found if s is not None]
        if len(scripts) != 1:
            raise RevisionError(
                f"{spelled!r} names {len(scripts)} revisions; lint takes one per argument.",
                revision=spelled,
                hint="Name each revision by its id.",
            )
        rev_id = scripts[0].revision
        owner = loader.bind_of(rev_id)
        if owner not in names:
            raise RevisionError(
                f"Revision {rev_id} belongs to bind {owner!r}, which is not selected.",
                revision=rev_id,
                bind=owner,
                hint=f"Add --bind {owner}, or drop --bind." if explicit else None,
            )
        return owner, rev_id

    def _lint(
        self,
        wanted: Mapping[str, Sequence[str]],
        *,
        tag: str | None = None,
        x_arguments: Sequence[str] | None = None,
    ) -> LintReport:
        from . import lint_sql
        from .lint import lint_revisions
        from .timeouts import effective

        if not lint_sql.available():
            raise ConfigurationError(
                "Linting migrations needs a SQL parser, which is not installed.",
                hint="pip install 'Flask-Alembic[lint]' (it installs sqlglot).",
            )
        runtimes = self._loader.runtimes
        for name, ids in wanted.items():
            for rev_id in ids:
                script = runtimes[name].script.get_revision(rev_id)
                if script is not None:
                    self._loader.check_revision_file(name, rev_id, script.path)

        def lock_timeout(bind: Bind) -> Callable[[Any], bool]:
            def in_force(module: Any) -> bool:
                return effective(bind, module).get("lock_timeout") is not None

            return in_force

        guards = {name: lock_timeout(runtimes[name].bind) for name in wanted}
        return lint_revisions(
            runtimes, wanted, lock_timeout=guards, tag=tag, x_arguments=x_arguments
        )


def _is_script(value: object) -> bool:
    """Whether ``value`` is an Alembic ``Script`` (told without importing Alembic)."""
    return hasattr(value, "revision") and hasattr(value, "down_revision")


def _target(value: object) -> Target:
    """A target as the planner takes it: a ``Script`` is its id, a list of one its item."""
    if isinstance(value, str | int):
        return value
    if _is_script(value):
        return str(value.revision)  # type: ignore[attr-defined]
    if isinstance(value, list | tuple):
        items = [_target(item) for item in value]
        if len(items) == 1:
            return items[0]
        raise RevisionError(
            f"Several targets were given ({', '.join(map(str, items))}); one is needed here.",
            hint="Give one target per call: a revision id, 'BIND@REV', 'heads' or a count.",
        )
    raise RevisionError(
        f"{value!r} is not a revision target.",
        hint="Give a revision id, a Script, 'heads', 'base' or a count of steps such as -1.",
    )


class _LazyMapping(Mapping[str, Any]):
    """A read-only mapping whose values are built on first access."""

    def __init__(self, registry: BindRegistry, factory: Callable[[str], Any]) -> None:
        self._registry = registry
        self._keys = registry.names
        self._factory = factory

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys:
            self._registry[key]  # raises: unknown, or not managed
        return self._factory(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)
