"""The ``Alembic`` Flask extension: per-app state, configuration and the Python API."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import os
import re
import shutil
import sys
import warnings
import weakref
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from typing import Literal
from typing import overload
from typing import TYPE_CHECKING

import sqlalchemy as sa
from flask import current_app
from flask import Flask
from flask import g

from . import locking
from . import planner
from . import revision_cache
from .errors import ConfigurationError
from .errors import DatabaseError
from .errors import FlaskAlembicError
from .errors import MultipleHeadsError
from .errors import NotUpToDateError
from .errors import RevisionError
from .errors import ScriptDirectoryError
from .errors import UnknownBindError
from .identity import DatabaseIdentity
from .identity import Identities
from .registry import Bind
from .registry import bind_directory_name
from .registry import BindRegistry
from .registry import build_registry
from .registry import DEFAULT_BIND
from .registry import describe_exception
from .registry import EnginesArg
from .registry import MetadatasArg


def _lazy_module(name: str) -> ModuleType:
    """A module that is imported when one of its attributes is first used."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    assert spec is not None
    assert spec.loader is not None
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.operations import Operations
    from alembic.operations.ops import MigrationScript
    from alembic.runtime.environment import EnvironmentContext
    from alembic.runtime.migration import MigrationContext
    from alembic.script import Script
    from alembic.script import ScriptDirectory

    from . import executor
else:
    # The executor (and what it imports) loads on first use: not on a no-op deploy.
    executor = _lazy_module(__package__ + ".executor")

__all__ = ["STATES", "Alembic", "BindStatus"]

BindArg = str | Iterable[str] | None

#: Where the files a new script directory starts from live: inside the installed
#: package, or at the top of a source checkout.
_TEMPLATE_CANDIDATES = (
    Path(__file__).parent / "migrations_template",
    Path(__file__).parent.parent / "migrations_template",
)


def _template_dir() -> Path:
    for candidate in _TEMPLATE_CANDIDATES:
        if (candidate / "script.py.mako").is_file():
            return candidate
    raise ScriptDirectoryError(
        "Flask-Alembic's migrations_template folder is missing from the installation.",
        hint="Reinstall Flask-Alembic.",
    )


#: The states ``status()`` reports, from best to worst; then the state of a bind that is
#: not migrated at all (no models, or excluded), which is never connected to.
STATES = (
    "up to date",
    "pending",
    "multiple heads",
    "ahead/unknown revision",
    "unreachable",
    "not managed",
)


@dataclass(frozen=True)
class BindStatus:
    """Where one bind's database stands against its scripts."""

    bind: str
    #: The database URL with the password hidden.
    url: str
    version_table: str
    current: tuple[str, ...]
    heads: tuple[str, ...]
    #: Steps an upgrade to heads would run; ``None`` when it cannot be known.
    pending: int | None
    #: One of :data:`STATES`.
    state: str = "up to date"
    #: Why the state is ``unreachable`` or ``ahead/unknown revision``, in one line.
    error: FlaskAlembicError | None = None
    #: Why the bind is managed or not (for a bind that is not: why it is left alone).
    reason: str = "it has models"

    @property
    def up_to_date(self) -> bool:
        return self.state == "up to date"

    @property
    def managed(self) -> bool:
        """Whether Flask-Alembic migrates this bind."""
        return self.state != "not managed"


# The private holders below are plain classes, not dataclasses: a dataclass costs about
# a millisecond to define, and every `flask` command of the app pays for it at import.


class _AppState:
    """What the extension keeps per app (never on ``self``: one extension, many apps)."""

    __slots__ = ("app", "registry")

    def __init__(self, app: weakref.ReferenceType[Flask]) -> None:
        self.app = app
        self.registry: BindRegistry | None = None


class _ContextCache:
    """What the extension keeps per app context: scripts, views, accessor connections."""

    __slots__ = (
        "connections",
        "environments",
        "exit_stack",
        "histories",
        "identities",
        "owner",
        "revisions",
        "runtimes",
        "script",
    )

    def __init__(self) -> None:
        self.script: ScriptDirectory | None = None
        self.revisions: revision_cache.Revisions | None = None
        self.owner: dict[str, str] = {}
        self.runtimes: dict[str, executor.BindRuntime] = {}
        self.histories: dict[str, planner.BindHistory] = {}
        self.connections: dict[str, sa.Connection] = {}
        self.environments: dict[str, EnvironmentContext] = {}
        #: Each database's identity, as its server gave it during this app context.
        self.identities = Identities()
        self.exit_stack = ExitStack()


class Alembic:
    """Alembic migrations for a Flask app, with one database or several.

    :param app: call :meth:`init_app` on this app.
    :param run_mkdir: create the script directory during :meth:`init_app` if missing.
    :param command_name: register the CLI group under this name; ``""`` to skip.
    :param metadatas: the models' metadata: one ``MetaData``, a list, or a dict of bind
        name to ``MetaData`` or list. Found automatically with Flask-SQLAlchemy.
    :param engines: one ``Engine`` or a dict of bind name to ``Engine``. Found
        automatically with Flask-SQLAlchemy and Flask-SQLAlchemy-Lite.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        run_mkdir: bool = True,
        command_name: str = "db",
        metadatas: MetadatasArg | None = None,
        engines: EnginesArg | None = None,
    ) -> None:
        self.run_mkdir = run_mkdir
        self.command_name = command_name
        self.metadatas = metadatas
        self.engines = engines
        self._states: weakref.WeakKeyDictionary[Flask, _AppState] = weakref.WeakKeyDictionary()
        if app is not None:
            self.init_app(app)

    # -- setup ------------------------------------------------------------------------

    def init_app(
        self,
        app: Flask,
        *,
        run_mkdir: bool | None = None,
        command_name: str | None = None,
    ) -> None:
        """Register the extension on ``app``: config defaults, script directory, CLI."""
        if "alembic" in app.extensions:
            raise RuntimeError(
                "A 'flask_alembic.Alembic' instance is already registered on this app "
                f"({app.name!r}). Call 'init_app' once per app."
            )
        app.extensions["alembic"] = self
        self._states[app] = _AppState(app=weakref.ref(app))

        config = app.config.setdefault("ALEMBIC", {})
        if not isinstance(config, dict):
            raise ConfigurationError(
                "'ALEMBIC' must be a dict of Alembic options.",
                hint='For example ALEMBIC = {"script_location": "migrations"}.',
            )
        config.setdefault("script_location", "migrations")
        context = app.config.setdefault("ALEMBIC_CONTEXT", {})
        if not isinstance(context, dict):
            raise ConfigurationError(
                "'ALEMBIC_CONTEXT' must be a dict of options for EnvironmentContext.configure.",
                hint='For example ALEMBIC_CONTEXT = {"compare_type": True}.',
            )
        context.setdefault("compare_server_default", True)
        app.config.setdefault("ALEMBIC_BINDS", {})

        if run_mkdir if run_mkdir is not None else self.run_mkdir:
            self._mkdir(app)

        name = command_name if command_name is not None else self.command_name
        if name:
            from .cli import db

            app.cli.add_command(db, name)

        app.teardown_appcontext(self._teardown)

    def _state(self, app: Flask | None = None) -> _AppState:
        app = app or current_app._get_current_object()  # type: ignore[attr-defined]
        try:
            return self._states[app]
        except KeyError:
            raise RuntimeError(
                "The current Flask app is not registered with this 'flask_alembic.Alembic' "
                "instance. Did you forget to call 'init_app', or create a different instance?"
            ) from None

    def _teardown(self, exc: BaseException | None) -> None:
        cache: _ContextCache | None = g.pop("_flask_alembic", None)
        if cache is not None:
            cache.exit_stack.close()

    def _cache(self) -> _ContextCache:
        cache: _ContextCache | None = g.get("_flask_alembic")
        if cache is None:
            cache = _ContextCache()
            g._flask_alembic = cache
        return cache

    def _refresh(self) -> None:
        """Forget the loaded scripts, after writing a revision file."""
        cache = self._cache()
        cache.script = None
        cache.revisions = None
        cache.owner.clear()
        cache.runtimes.clear()
        cache.histories.clear()

    # -- configuration --------------------------------------------------------------

    def _script_location(self, app: Flask) -> Path:
        location = os.fspath(app.config["ALEMBIC"]["script_location"])
        if (
            ":" in location
            and not os.path.isabs(location)
            and not re.match(r"^[A-Za-z]:[\\/]", location)
        ):
            from alembic.util import coerce_resource_to_filename

            return Path(coerce_resource_to_filename(location))
        path = Path(location)
        if not path.is_absolute():
            path = Path(app.root_path) / path
        return path

    def _extra_locations(self, app: Flask) -> list[Path]:
        raw = app.config["ALEMBIC"].get("version_locations") or []
        if isinstance(raw, str | os.PathLike):
            raw = [raw]
        result = []
        for item in raw:
            text = os.fspath(item)
            if ":" in text and not os.path.isabs(text):
                from alembic.util import coerce_resource_to_filename

                result.append(Path(coerce_resource_to_filename(text)))
            else:
                path = Path(text)
                result.append(path if path.is_absolute() else Path(app.root_path) / path)
        return result

    @property
    def registry(self) -> BindRegistry:
        """The app's binds. Needs an app context."""
        state = self._state()
        if state.registry is None:
            app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
            state.registry = build_registry(
                app,
                script_location=self._script_location(app),
                extra_default_locations=self._extra_locations(app),
                engines=self.engines,
                metadatas=self.metadatas,
            )
        return state.registry

    @property
    def config(self) -> Config:
        """An Alembic ``Config`` for the current app, built from ``ALEMBIC``."""
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        import argparse

        from alembic.config import Config

        # quiet: the Python API must not print Alembic's "Generating ... done".
        config = Config(cmd_opts=argparse.Namespace(quiet=True))
        options = dict(app.config["ALEMBIC"])
        options.pop("version_locations", None)
        for key, value in options.items():
            if isinstance(value, Mapping):
                for sub_key, sub_value in value.items():
                    config.set_section_option(key, str(sub_key), _config_str(sub_value))
            else:
                config.set_main_option(key, _config_str(value))
        config.set_main_option("script_location", _config_str(self._script_location(app)))
        config.set_main_option("path_separator", "newline")
        locations = [str(p) for p in self.registry.version_locations()]
        config.set_main_option("version_locations", _config_str("\n".join(locations)))
        return config

    # -- scripts ----------------------------------------------------------------------

    @property
    def script_directory(self) -> ScriptDirectory:
        """Alembic's ``ScriptDirectory`` holding every bind's revisions."""
        cache = self._cache()
        if cache.script is None:
            app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
            location = self._script_location(app)
            if location.exists() and not location.is_dir():
                raise ScriptDirectoryError(
                    f"The migrations directory {location} is a file, not a folder.",
                    path=str(location),
                    hint="Move the file away, or point ALEMBIC['script_location'] elsewhere.",
                )
            if not location.is_dir():
                raise ScriptDirectoryError(
                    f"The migrations directory {location} does not exist.",
                    path=str(location),
                    hint="Create it with 'flask db mkdir' (or alembic.mkdir()).",
                )
            if not os.access(location, os.R_OK | os.X_OK):
                raise ScriptDirectoryError(
                    f"The migrations directory {location} is not readable.",
                    path=str(location),
                    hint="Fix its permissions.",
                )
            from alembic.script import ScriptDirectory

            try:
                script = ScriptDirectory.from_config(self.config)
            except _command_error() as exc:
                raise ScriptDirectoryError(
                    f"Cannot use the migrations directory {location}: {exc}",
                    path=str(location),
                    hint="Check the 'ALEMBIC' config.",
                ) from None
            if (
                app.config.get("ALEMBIC_REVISION_CACHE", True)
                and not script.sourceless
                and not script.recursive_version_locations
            ):
                from . import _alembic_compat as compat

                compat.use_revision_files(script, self._revision_files())
            cache.script = script
        return cache.script

    script = script_directory

    def _revisions(self) -> revision_cache.Revisions:
        """Every revision file of every bind, as the revision cache knows them."""
        cache = self._cache()
        if cache.revisions is None:
            app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
            cache_dir = self._script_location(app) / "__pycache__"
            locations = self.registry.version_locations()
            cache.revisions = revision_cache.scan(locations, cache_dir)
        return cache.revisions

    def _revision_files(self) -> list[revision_cache.RevisionFile]:
        return self._revisions().files()

    def _quick_graph(self) -> _QuickGraph | None:
        """Each bind's heads from the cache alone, without importing Alembic.

        ``None`` when only Alembic can tell: the cache is off, a file could not be read
        statically, a dependency is named by label, or the history is broken.
        """
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        options = app.config["ALEMBIC"]
        if (
            not app.config.get("ALEMBIC_REVISION_CACHE", True)
            or options.get("sourceless") in (True, "true", "True", "1")
            or options.get("recursive_version_locations") in (True, "true", "True", "1")
            or not self._script_location(app).is_dir()
        ):
            return None
        registry = self.registry
        owner: dict[str, str] = {}
        count = 0
        graphs: dict[str, list[revision_cache.FolderGraph]] = {b.name: [] for b in registry}
        for folder, graph in self._revisions().graphs().items():
            bind = registry.bind_for_location(folder)
            if bind is None or graph is None:
                return None
            owner.update(dict.fromkeys(graph.ids, bind.name))
            count += len(graph.ids)
            graphs[bind.name].append(graph)
        if len(owner) != count:
            return None  # an id used twice: let Alembic load it and say what is wrong
        heads: dict[str, tuple[str, ...]] = {}
        depends: dict[str, set[str]] = {}
        for name, folders in graphs.items():
            # A revision of one folder may follow one in another folder of the same bind.
            external = {down for graph in folders for down in graph.external_downs}
            if any(owner.get(down) != name for down in external):
                return None  # a broken history: let Alembic load it and say what is wrong
            heads[name] = tuple(
                rev for graph in folders for rev in graph.heads if rev not in external
            )
            depends[name] = set()
            for token in {token for graph in folders for token in graph.depends_on}:
                if token not in owner:
                    return None  # a label, or an unknown id: Alembic resolves or reports it
                if owner[token] != name:
                    depends[name].add(owner[token])
        return _QuickGraph(heads, depends)

    def _load(self) -> None:
        """Load every revision and split them by bind."""
        from . import _alembic_compat as compat

        cache = self._cache()
        if cache.runtimes:
            return
        script = self.script_directory
        registry = self.registry
        scripts = _load_scripts(script)
        owner: dict[str, str] = {}
        by_bind: dict[str, list[str]] = {b.name: [] for b in registry}
        for rev in scripts:
            bind = registry.bind_for_path(rev.path)
            if bind is None:  # pragma: no cover - only files in bind locations are loaded
                continue
            owner[rev.revision] = bind.name
            by_bind[bind.name].append(rev.revision)

        for rev in scripts:
            name = owner.get(rev.revision)
            if name is None:  # pragma: no cover
                continue
            for down in _to_tuple(rev.down_revision):
                if owner.get(down, name) != name:
                    raise ScriptDirectoryError(
                        f"Revision {rev.revision} ({rev.path}) of bind {name!r} has "
                        f"down_revision {down}, which belongs to bind {owner[down]!r}.",
                        bind=name,
                        revision=rev.revision,
                        path=rev.path,
                        hint="A bind's history must descend from its own revisions; use "
                        "depends_on for an order between binds.",
                    )

        config = self.config
        for bind in registry:
            view = compat.bind_script_directory(script, by_bind[bind.name])
            foreign: dict[str, tuple[tuple[str, str], ...]] = {}
            for rev_id in by_bind[bind.name]:
                deps = compat.resolved_dependencies(script.revision_map.get_revision(rev_id))  # type: ignore[arg-type]
                outside = tuple((owner[d], d) for d in deps if owner.get(d, bind.name) != bind.name)
                if outside:
                    foreign[rev_id] = outside
            cache.runtimes[bind.name] = executor.BindRuntime(bind, view, config)
            cache.histories[bind.name] = planner.BindHistory(bind.name, view.revision_map, foreign)
        cache.owner = owner

    def _runtimes(self) -> dict[str, executor.BindRuntime]:
        self._load()
        return self._cache().runtimes

    def _histories(self) -> dict[str, planner.BindHistory]:
        self._load()
        return self._cache().histories

    def _select(self, bind: BindArg) -> list[Bind]:
        return self.registry.select(bind)

    def bind_of(self, revision: str | Script) -> str:
        """The name of the bind a revision belongs to."""
        self._load()
        rev_id = revision if isinstance(revision, str) else revision.revision
        try:
            full = self.script_directory.get_revision(rev_id).revision
        except _command_error() as exc:
            raise RevisionError(str(exc), revision=rev_id, hint="Run 'flask db log'.") from None
        return self._cache().owner[full]

    # -- accessors ------------------------------------------------------------------

    def _connection(self, bind: Bind) -> sa.Connection:
        cache = self._cache()
        if bind.name not in cache.connections:
            connection = cache.exit_stack.enter_context(bind.connect())
            cache.identities.read(bind.engine, connection)
            cache.connections[bind.name] = connection
        return cache.connections[bind.name]

    def _environment(self, name: str) -> EnvironmentContext:
        cache = self._cache()
        if name not in cache.environments:
            from alembic.runtime.environment import EnvironmentContext

            runtime = self._runtimes()[name]
            env = EnvironmentContext(runtime.config, runtime.script)
            connection = self._connection(runtime.bind)
            neighbours = self._neighbour_tables(runtime.bind)
            env.configure(
                connection=connection, **executor.context_options(runtime.bind, neighbours)
            )
            cache.environments[name] = env
        return cache.environments[name]

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

    # -- reading state ----------------------------------------------------------------

    @contextmanager
    def _heads_reader(self) -> Iterator[_HeadsReader]:
        with ExitStack() as stack:
            yield _HeadsReader(stack, self._cache().identities)

    def _current_heads(self, binds: Iterable[Bind]) -> dict[str, tuple[str, ...]]:
        """Each bind's heads, once no two binds turn out to share a version table."""
        binds = list(binds)
        with self._heads_reader() as reader:
            heads = {b.name: reader.heads(b) for b in binds}
        self._check_version_tables(binds)
        return heads

    def _check_version_tables(self, binds: Iterable[Bind]) -> None:
        """Refuse binds whose version table is another bind's, however the URLs are spelled."""
        self.registry.check_version_tables(binds, self._cache().identities)

    def _identity(self, bind: Bind) -> DatabaseIdentity:
        return bind.identity(self._cache().identities)

    def _neighbour_tables(self, bind: Bind) -> frozenset[str]:
        return self.registry.neighbour_tables(bind, self._cache().identities)

    def _scripts(self, ids: Iterable[str]) -> tuple[Script, ...]:
        script = self.script_directory
        return tuple(script.get_revision(i) for i in ids)

    def current(self, bind: BindArg = None) -> tuple[Script, ...]:
        """The revisions each selected bind's database is at."""
        binds = self._select(bind)
        self._load()
        heads = self._current_heads(binds)
        result: list[Script] = []
        for b in binds:
            planner._check_known_heads(
                self._histories()[b.name], heads[b.name], self._histories().values()
            )
            result.extend(self._scripts(heads[b.name]))
        return tuple(result)

    def heads(self, bind: BindArg = None) -> tuple[Script, ...]:
        """The latest revisions of each selected bind's history."""
        histories = self._histories()
        result: list[Script] = []
        for b in self._select(bind):
            result.extend(self._scripts(histories[b.name].revision_map.heads))
        return tuple(result)

    def branches(self, bind: BindArg = None) -> tuple[Script, ...]:
        """Revisions with more than one child (branch points)."""
        histories = self._histories()
        result: list[Script] = []
        for b in self._select(bind):
            rmap = histories[b.name].revision_map
            for rev in rmap.iterate_revisions(rmap.heads, "base"):
                if len(rev.nextrev) > 1:
                    result.append(self.script_directory.get_revision(rev.revision))
        return tuple(result)

    def log(self, start: str = "base", end: str = "heads", bind: BindArg = None) -> list[Script]:
        """Revisions from ``end`` down to ``start``, newest first, per bind."""
        histories = self._histories()
        binds = self._select(bind)
        ranges: list[tuple[Bind, str, str]] = []
        if start == "base" and end == "heads":
            ranges = [(b, "base", "heads") for b in binds]
        else:
            sub = [histories[b.name] for b in binds]
            lower = (
                planner.resolve_target(start, sub, direction="downgrade") if start != "base" else {}
            )
            upper = planner.resolve_target(end, sub, direction="upgrade") if end != "heads" else {}
            for b in binds:
                if (lower and b.name not in lower) or (upper and b.name not in upper):
                    continue
                lo = lower.get(b.name, "base")
                up = upper.get(b.name, "heads")
                ranges.append((b, str(lo), str(up)))
        result: list[Script] = []
        for b, lo, up in ranges:
            rmap = histories[b.name].revision_map
            try:
                revs = list(
                    rmap.iterate_revisions(up, lo, inclusive=True, assert_relative_length=False)
                )
            except Exception as exc:
                raise RevisionError(
                    f"Cannot list bind {b.name!r} from {lo!r} to {up!r}: {exc}.",
                    bind=b.name,
                    hint="Check the --start and --end revisions with 'flask db heads'.",
                ) from None
            result.extend(self.script_directory.get_revision(r.revision) for r in revs)
        return result

    def show(self, revision: str, bind: BindArg = None) -> Script:
        """One revision, looked up among the selected binds."""
        histories = self._histories()
        selected = [histories[b.name] for b in self._select(bind)]
        owner, target = next(
            iter(planner.resolve_target(revision, selected, direction="upgrade").items())
        )
        rmap = histories[owner].revision_map
        try:
            revs = planner.revision_ids(rmap, target)
        except Exception as exc:
            raise RevisionError(
                f"Cannot show {revision!r} in bind {owner!r}: {exc}.",
                bind=owner,
                revision=revision,
                hint="Give a revision id; see 'flask db log'.",
            ) from None
        if len(revs) != 1:
            raise RevisionError(
                f"{revision!r} names {len(revs)} revisions in bind {owner!r}, not one.",
                bind=owner,
                revision=revision,
                hint="Give a single revision id.",
            )
        return self.script_directory.get_revision(revs[0])

    def status(self, bind: BindArg = None) -> list[BindStatus]:
        """Where each selected bind stands; a failing bind does not hide the others.

        Binds that are not managed are listed too, with the reason, and never connected to.
        """
        everything = self.registry.select(bind, unmanaged=True)
        binds = [b for b in everything if b.managed]
        rows = {b.name: _unmanaged_status(b) for b in everything if not b.managed}
        if binds:
            quick = self._quick_graph()
            found = self._quick_status(binds, quick) if quick is not None else None
            if found is None:
                histories = self._histories()
                with self._heads_reader() as reader:
                    found = [self._bind_status(b, histories[b.name], reader) for b in binds]
            rows.update((row.bind, row) for row in found)
        return [rows[b.name] for b in everything]

    def _quick_status(self, binds: list[Bind], quick: _QuickGraph) -> list[BindStatus] | None:
        """Status rows from the cache when every bind is simply at its single head."""
        rows = []
        with self._heads_reader() as reader:
            for b in binds:
                try:
                    current = reader.heads(b)
                except DatabaseError:
                    return None
                if not quick.at_heads(b.name, current, single=True):
                    return None
                rows.append(
                    BindStatus(
                        bind=b.name,
                        url=b.display_url,
                        version_table=_table_name(b),
                        current=current,
                        heads=current,
                        pending=0,
                        reason=b.reason,
                    )
                )
            self._check_version_tables(binds)
        return rows

    def _bind_status(
        self, b: Bind, history: planner.BindHistory, reader: _HeadsReader
    ) -> BindStatus:
        heads = tuple(history.revision_map.heads)
        row = BindStatus(
            bind=b.name,
            url=b.display_url,
            version_table=_table_name(b),
            current=(),
            heads=heads,
            pending=None,
            reason=b.reason,
        )
        try:
            current = reader.heads(b)
        except DatabaseError as exc:
            return dataclasses.replace(row, state="unreachable", error=exc)
        self._check_version_tables([b])
        row = dataclasses.replace(row, current=current)
        try:
            # Only this bind's own steps count; dependencies on other binds do not.
            steps = planner.bind_steps(
                "upgrade", history, current, "heads", others=self._histories().values()
            )
        except RevisionError as exc:
            return dataclasses.replace(row, state="ahead/unknown revision", error=exc)
        row = dataclasses.replace(row, pending=len(steps))
        if len(heads) > 1:
            return dataclasses.replace(row, state="multiple heads")
        return dataclasses.replace(row, state="pending" if steps else "up to date")

    def applied(self, bind: BindArg = None) -> set[str]:
        """The ids of the revisions applied on their databases (unreachable binds: none)."""
        histories = self._histories()
        result: set[str] = set()
        for status in self.status(bind):
            if status.error is None and status.managed:
                result |= histories[status.bind].applied(status.current)
        return result

    def needs_upgrade(self, bind: BindArg = None) -> bool:
        """Whether any selected bind's database is behind its heads."""
        statuses = self.status(bind)
        for status in statuses:
            if status.error is not None:
                raise status.error
        return any(status.pending for status in statuses)

    # -- comparing models with databases --------------------------------------------

    def compare_metadata(self, bind: BindArg = None) -> list[Any]:
        """The differences between the models and the databases, as Alembic diff tuples.

        A bind without models is not compared: its whole database would differ.
        """
        from alembic.autogenerate import compare_metadata

        result: list[Any] = []
        for b in self._select(bind):
            if not b.has_models:
                continue
            # Alembic accepts a list of MetaData here, though its annotation says one.
            metadata: Any = b.target_metadata
            result.extend(compare_metadata(self.migration_contexts[b.name], metadata))
        return result

    def produce_migrations(self, bind: str | None = None) -> MigrationScript:
        """The operations that would bring one bind's database in line with its models."""
        from alembic.autogenerate import produce_migrations

        b = self.registry[bind] if bind is not None else self.registry.default
        if not b.has_models:
            raise ConfigurationError(
                f"Bind {b.name!r} has no models to compare with (its metadata has no tables); "
                "comparing would propose dropping every table of its database.",
                bind=b.name,
                hint="Define its models and import them first, or pass them with "
                "Alembic(metadatas={...}).",
            )
        metadata: Any = b.target_metadata
        return produce_migrations(self.migration_contexts[b.name], metadata)

    def needs_revision(self, bind: BindArg = None) -> bool:
        """Whether any selected bind's models differ from its database."""
        return bool(self.compare_metadata(bind))

    # -- writing revisions ------------------------------------------------------------

    def rev_id(self) -> str:
        """A new random revision id."""
        from alembic.util import rev_id

        return rev_id()

    def mkdir(self) -> Path:
        """Create the script directory from the template, or restore its missing files."""
        return self._mkdir(current_app._get_current_object(), fill=True)  # type: ignore[attr-defined]

    def _mkdir(self, app: Flask, *, fill: bool = False) -> Path:
        """Create the folder from the template; with ``fill``, add the template files an
        existing folder lacks. Never overwrite a file."""
        location = self._script_location(app)
        if location.exists() and (not fill or not location.is_dir()):
            return location  # an existing directory is the user's; errors come on use
        location.mkdir(parents=True, exist_ok=True)
        template = _template_dir()
        if not (location / "script.py.mako").exists():
            for item in template.iterdir():
                target = location / item.name
                if item.is_file() and not item.name.startswith(".") and not target.exists():
                    shutil.copyfile(item, target)
        return location

    def revision(
        self,
        message: str,
        empty: bool = False,
        branch: str | None = None,
        parent: str | None = None,
        splice: bool = False,
        depend: str | Iterable[str] | None = None,
        label: str | Iterable[str] | None = None,
        path: str | os.PathLike[str] | None = None,
        rev_id: str | None = None,
        bind: BindArg = None,
    ) -> list[Script]:
        """Write new revision files, autogenerated from the models unless ``empty``.

        With several binds, one revision is written per bind whose models changed.
        Returns the new scripts (an empty list when nothing changed).
        """
        if branch is not None and bind is None:
            bind = branch
        written = self._write_revisions(
            message,
            empty=empty,
            parent=parent,
            splice=splice,
            depend=depend,
            label=label,
            path=path,
            rev_id=rev_id,
            bind=bind,
        )
        return [item.script for item in written.revisions]

    def _write_revisions(
        self,
        message: str,
        *,
        empty: bool = False,
        parent: str | None = None,
        splice: bool = False,
        depend: str | Iterable[str] | None = None,
        label: str | Iterable[str] | None = None,
        path: str | os.PathLike[str] | None = None,
        rev_id: str | None = None,
        bind: BindArg = None,
    ) -> _Written:
        """Write revisions; say what each was generated from, and why a bind had none."""
        from alembic.autogenerate import RevisionContext

        registry = self.registry
        histories = self._histories()
        if parent is not None and bind is None and parent not in {"head", "heads"}:
            owner = planner.resolve_target(parent, list(histories.values()), direction="upgrade")
            bind = next(iter(owner))
        binds = self._select(bind)
        if empty and len(binds) > 1:
            raise UnknownBindError(
                "An empty revision needs one bind, but this app has several: "
                f"{registry.describe_names()}.",
                hint="Name one with --bind NAME.",
            )
        for option, value in (("--path", path), ("--rev-id", rev_id)):
            if value is not None and len(binds) > 1:
                raise UnknownBindError(
                    f"{option} needs one bind, but several are selected.",
                    hint="Name one with --bind NAME.",
                )
        if rev_id is not None:
            self._check_new_rev_id(rev_id)
        depends_on = self._resolve_depends(depend)
        script = self.script_directory
        self._check_template(script)
        config = self.config
        result = _Written()
        # Compare every bind first: an error in one leaves no file written for another.
        prepared: list[tuple[Bind, Any, list[Any]]] = []
        for b in binds:
            if not empty and not b.has_models:
                # Comparing an empty metadata with a database proposes dropping every table.
                result.skipped[b.name] = (
                    "not compared with its database: it has no models, so every table in it "
                    "would look like one to drop; write its revisions by hand with --empty"
                )
                continue
            history = histories[b.name]
            rmap = history.revision_map
            if parent is not None and parent not in {"head", "heads"}:
                head: str | tuple[str, ...] = planner.resolve_target(
                    parent, [history], direction="upgrade"
                )[b.name]
            elif not rmap.heads:
                head = "base"
            elif len(rmap.heads) > 1 and not splice:
                raise MultipleHeadsError(
                    f"Bind {b.name!r} has several heads ({', '.join(sorted(rmap.heads))}).",
                    bind=b.name,
                    hint=f"Merge them first with 'flask db merge --bind {b.name}', or pick one "
                    "with --parent REV.",
                )
            else:
                head = tuple(rmap.heads)
            labels = list(_to_tuple(label))
            if not rmap.heads and b.branch_label not in labels:
                labels.insert(0, b.branch_label)
            version_path = Path(path).resolve() if path is not None else b.version_location
            if version_path not in b.version_locations and path is not None:
                raise ScriptDirectoryError(
                    f"--path {path} is not a version location of bind {b.name!r}.",
                    bind=b.name,
                    path=str(path),
                    hint="Its locations: " + ", ".join(str(p) for p in b.version_locations) + ".",
                )
            rc = RevisionContext(
                config,
                script,
                {
                    "message": _docstring_safe(message),
                    "autogenerate": not empty,
                    "sql": False,
                    "head": head,
                    "splice": splice,
                    "branch_label": tuple(labels) or None,
                    "version_path": str(version_path),
                    "rev_id": rev_id,
                    "depends_on": depends_on,
                },
            )
            changes: list[Any] = []
            if not empty:
                changed, changes = self._autogenerate(b, rc)
                if not changed:
                    continue
            prepared.append((b, rc, changes))
        try:
            for b, rc, changes in prepared:
                try:
                    # Post-write hooks report through Alembic's stdout: keep the API silent.
                    with contextlib.redirect_stdout(io.StringIO()):
                        scripts = [s for s in rc.generate_scripts() if s is not None]
                except _command_error() as exc:
                    raise RevisionError(
                        f"Cannot write a revision for bind {b.name!r}: {exc}",
                        bind=b.name,
                        hint="Check --parent, --rev-id and --label.",
                    ) from None
                losses = data_losses(b.name, changes, b.engine.dialect)
                result.revisions.extend(
                    _WrittenRevision(s, b.name, changes, losses) for s in scripts
                )
        finally:
            self._refresh()
        return result

    def _check_new_rev_id(self, rev_id: str) -> None:
        """Refuse a chosen revision id that is malformed, reserved or already used."""
        if not _REV_ID.fullmatch(rev_id):
            raise RevisionError(
                f"{rev_id!r} is not a valid revision id: use 1 to 32 letters, digits and "
                "underscores.",
                revision=rev_id,
                hint="Leave --rev-id out for a random id, or use one like 'a1b2c3d4e5f6'.",
            )
        if rev_id in {"base", "head", "heads"}:
            reason = "is a reserved word for revision targets"
        elif rev_id in {b.name for b in self.registry.all}:
            reason = "is the name of a bind, which targets use as 'BIND@REV'"
        else:
            self._load()
            script = self.script_directory
            owner = self._cache().owner.get(rev_id)
            if owner is not None:
                existing = script.revision_map.get_revision(rev_id)
                where = getattr(existing, "path", None) or "a revision file"
                raise RevisionError(
                    f"Revision id {rev_id!r} is already used by {where} (bind {owner!r}).",
                    revision=rev_id,
                    path=where,
                    hint="Choose another id, or leave --rev-id out for a random one.",
                )
            from . import _alembic_compat as compat

            labels = {name for rev in compat.all_scripts(script) for name in rev.branch_labels}
            if rev_id not in labels:
                return
            reason = "is a branch label"
        raise RevisionError(
            f"Revision id {rev_id!r} {reason}.",
            revision=rev_id,
            hint="Choose another id, or leave --rev-id out for a random one.",
        )

    def _check_template(self, script: ScriptDirectory) -> None:
        template = Path(script.dir) / "script.py.mako"
        if not template.is_file():
            raise ScriptDirectoryError(
                f"The revision template {template} is missing.",
                path=str(template),
                hint="Run 'flask db mkdir' to restore it (existing files are kept).",
            )

    def _autogenerate(self, b: Bind, rc: Any) -> tuple[bool, list[Any]]:
        """Fill ``rc`` from comparing ``b``'s models with its database.

        Returns whether there is anything to write, and the differences found.
        """
        runtime = self._runtimes()[b.name]
        rmap = self._histories()[b.name].revision_map
        with ExitStack() as stack:
            connection = stack.enter_context(b.connect())
            self._cache().identities.read(b.engine, connection)
            self._check_version_tables([b])
            env = stack.enter_context(
                executor.environment(
                    runtime, connection, neighbour_tables=self._neighbour_tables(b)
                )
            )
            context = env.get_context()
            current = tuple(context.get_current_heads())
            if set(current) != set(rmap.heads):
                raise NotUpToDateError(
                    f"Bind {b.name!r} is at {', '.join(current) or 'base'}, not at its heads "
                    f"({', '.join(sorted(rmap.heads)) or 'base'}), so its models cannot be "
                    "compared.",
                    bind=b.name,
                    hint=f"Run 'flask db upgrade --bind {b.name}' first.",
                )
            rc.run_autogenerate("heads", context)
        # A process_revision_directives hook may add operations that are not diffs.
        ops_lists = [ops for script in rc.generated_revisions for ops in script.upgrade_ops_list]
        changed = not all(ops.is_empty() for ops in ops_lists)
        return changed, [diff for ops in ops_lists for diff in ops.as_diffs()]

    def _resolve_depends(self, depend: str | Iterable[str] | None) -> list[str] | None:
        if not depend:
            return None
        histories = list(self._histories().values())
        ids: list[str] = []
        for token in _to_tuple(depend):
            owner, target = next(
                iter(planner.resolve_target(token, histories, direction="upgrade").items())
            )
            if isinstance(target, tuple) or target in {"heads", "head", "base"} or "@" in target:
                rmap = self._histories()[owner].revision_map
                ids.extend(planner.revision_ids(rmap, target))
            else:
                ids.append(target)
        return ids

    def merge(
        self,
        revisions: str | Iterable[str] = "heads",
        message: str | None = None,
        label: str | Iterable[str] | None = None,
        rev_id: str | None = None,
        bind: str | None = None,
    ) -> Script:
        """Write a revision that merges several heads of one bind into one."""
        if rev_id is not None:
            self._check_new_rev_id(rev_id)
        histories = self._histories()
        tokens = list(_to_tuple(revisions))
        if bind is None:
            if tokens in (["heads"], ["head"]):
                candidates = [n for n, h in histories.items() if len(h.revision_map.heads) > 1]
                if not candidates:
                    raise RevisionError(
                        "Nothing to merge: every bind has a single head.",
                        hint="Give the revisions to merge explicitly.",
                    )
                if len(candidates) > 1:
                    raise UnknownBindError(
                        f"Several binds have more than one head: {', '.join(candidates)}.",
                        hint="Name the one to merge with --bind NAME.",
                    )
                bind = candidates[0]
            else:
                owners = {
                    next(
                        iter(
                            planner.resolve_target(t, list(histories.values()), direction="upgrade")
                        )
                    )
                    for t in tokens
                }
                if len(owners) > 1:
                    raise RevisionError(
                        f"Cannot merge revisions of different binds ({', '.join(sorted(owners))}).",
                        hint="A merge joins heads of one bind's history.",
                    )
                bind = owners.pop()
        b = self.registry[bind]
        rmap = histories[b.name].revision_map
        ids: list[str] = []
        for token in tokens:
            if token in {"heads", "head"}:
                ids.extend(rmap.heads)
            else:
                target = planner.resolve_target(token, [histories[b.name]], direction="upgrade")[
                    b.name
                ]
                ids.extend(planner.revision_ids(rmap, target))
        ids = list(dict.fromkeys(ids))
        if len(ids) < 2:
            raise RevisionError(
                f"Nothing to merge in bind {b.name!r}: it needs two or more revisions, got "
                f"{', '.join(ids) or 'none'}.",
                bind=b.name,
                hint="Give at least two revision ids, or merge 'heads' when there are several.",
            )
        config = self.config
        self._check_template(self.script_directory)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                script = self.script_directory.generate_revision(
                    rev_id or self.rev_id(),
                    _docstring_safe(message or "merge " + ", ".join(ids)),
                    refresh=True,
                    head=tuple(ids),
                    branch_labels=tuple(_to_tuple(label)) or None,
                    version_path=str(_version_path_of(self.script_directory, ids[0])),
                    config=config,
                )
        except _command_error() as exc:
            raise RevisionError(
                f"Cannot merge {', '.join(ids)} in bind {b.name!r}: {exc}",
                bind=b.name,
                hint="Check the revision ids with 'flask db heads'.",
            ) from None
        self._refresh()
        assert script is not None
        return script

    # -- running migrations -----------------------------------------------------------

    def plan(
        self,
        direction: Literal["upgrade", "downgrade", "stamp"],
        target: planner.Target,
        bind: BindArg = None,
        *,
        with_dependencies: bool = False,
        purge: bool = False,
        current: Mapping[str, tuple[str, ...]] | None = None,
        offline: bool = False,
    ) -> planner.Plan:
        """The plan ``upgrade``/``downgrade``/``stamp`` would run, without running it."""
        binds = self._select(bind)
        explicit = bind is not None
        all_histories = self._histories()
        selected = [all_histories[b.name] for b in binds]
        try:
            targets = planner.resolve_target(target, selected, direction=direction)
        except RevisionError:
            if not explicit:
                raise
            # Name the bind a target belongs to when --bind left it out.
            targets = planner.resolve_target(
                target, list(all_histories.values()), direction=direction
            )
        for name in targets:
            if name not in {b.name for b in binds}:
                raise UnknownBindError(
                    f"Target {target!r} belongs to bind {name!r}, which is not selected.",
                    bind=name,
                    hint=f"Add --bind {name}, or drop --bind.",
                )
        if current is None:
            involved = _related_binds(direction, [b.name for b in binds], all_histories)
            current = self._current_heads([b for b in self.registry if b.name in involved])
        if direction == "stamp":
            return planner.plan_stamp(
                selected, current, targets, purge=purge, others=list(all_histories.values())
            )
        return planner.plan_migration(
            direction,
            selected,
            current,
            targets,
            all_histories=list(all_histories.values()),
            with_dependencies=with_dependencies,
            offline=offline,
        )

    def _offline_plan(
        self,
        direction: Literal["upgrade", "downgrade", "stamp"],
        target: planner.Target,
        bind: BindArg,
        purge: bool = False,
        with_dependencies: bool = False,
    ) -> planner.Plan:
        binds = self._select(bind)
        text = str(target)
        start: str | None = None
        if ":" in text:
            start, _, text = text.partition(":")
        elif direction == "downgrade":
            raise RevisionError(
                f"Offline downgrade needs a range 'FROM:TO', got {text!r}.",
                revision=text,
                hint="For example: flask db downgrade --sql head:base.",
            )
        histories = self._histories()
        current: dict[str, tuple[str, ...]] = {b.name: () for b in binds}
        if start:
            starts = planner.resolve_target(
                start, [histories[b.name] for b in binds], direction="upgrade"
            )
            for name, value in starts.items():
                current[name] = planner.revision_ids(histories[name].revision_map, value)
        return self.plan(
            direction,
            text,
            bind,
            current=current,
            purge=purge,
            offline=True,
            with_dependencies=with_dependencies,
        )

    @overload
    def upgrade(
        self,
        target: planner.Target = ...,
        bind: BindArg = ...,
        *,
        sql: Literal[False] = ...,
        tag: str | None = ...,
        lock: bool = ...,
        lock_timeout: float | None = ...,
        parallel: int | None = ...,
        with_dependencies: bool = ...,
        on_event: executor.EventCallback | None = ...,
        on_plan: Callable[[planner.Plan], None] | None = ...,
    ) -> planner.MigrationResult: ...
    @overload
    def upgrade(
        self,
        target: planner.Target = ...,
        bind: BindArg = ...,
        *,
        sql: Literal[True],
        tag: str | None = ...,
        lock: bool = ...,
        lock_timeout: float | None = ...,
        parallel: int | None = ...,
        with_dependencies: bool = ...,
        on_event: executor.EventCallback | None = ...,
        on_plan: Callable[[planner.Plan], None] | None = ...,
    ) -> dict[str, str]: ...
    def upgrade(
        self,
        target: planner.Target = "heads",
        bind: BindArg = None,
        *,
        sql: bool = False,
        tag: str | None = None,
        lock: bool = True,
        lock_timeout: float | None = None,
        parallel: int | None = None,
        with_dependencies: bool = False,
        on_event: executor.EventCallback | None = None,
        on_plan: Callable[[planner.Plan], None] | None = None,
    ) -> planner.MigrationResult | dict[str, str]:
        """Upgrade the selected binds to ``target`` (default: every bind to its heads).

        With ``sql=True`` nothing runs and no lock is taken; the SQL per bind is returned.
        Otherwise each involved database's migration lock is held while its current
        revision is read, the plan made (``on_plan`` sees it) and run.
        """
        if sql:
            return self._offline_sql(
                "upgrade", target, bind, tag=tag, with_dependencies=with_dependencies
            )
        return self.migrate(
            "upgrade",
            target,
            bind,
            lock=lock,
            lock_timeout=lock_timeout,
            on_event=on_event,
            on_plan=on_plan,
            tag=tag,
            parallel=parallel,
            with_dependencies=with_dependencies,
        )

    @overload
    def downgrade(
        self,
        target: planner.Target = ...,
        bind: BindArg = ...,
        *,
        sql: Literal[False] = ...,
        tag: str | None = ...,
        lock: bool = ...,
        lock_timeout: float | None = ...,
        parallel: int | None = ...,
        on_event: executor.EventCallback | None = ...,
        on_plan: Callable[[planner.Plan], None] | None = ...,
    ) -> planner.MigrationResult: ...
    @overload
    def downgrade(
        self,
        target: planner.Target = ...,
        bind: BindArg = ...,
        *,
        sql: Literal[True],
        tag: str | None = ...,
        lock: bool = ...,
        lock_timeout: float | None = ...,
        parallel: int | None = ...,
        on_event: executor.EventCallback | None = ...,
        on_plan: Callable[[planner.Plan], None] | None = ...,
    ) -> dict[str, str]: ...
    def downgrade(
        self,
        target: planner.Target = -1,
        bind: BindArg = None,
        *,
        sql: bool = False,
        tag: str | None = None,
        lock: bool = True,
        lock_timeout: float | None = None,
        parallel: int | None = None,
        on_event: executor.EventCallback | None = None,
        on_plan: Callable[[planner.Plan], None] | None = None,
    ) -> planner.MigrationResult | dict[str, str]:
        """Downgrade the selected binds to ``target`` (default: one step; name a bind).

        With ``sql=True`` nothing runs and no lock is taken; the SQL per bind is returned.
        Otherwise each involved database's migration lock is held while its current
        revision is read, the plan made (``on_plan`` sees it) and run.
        """
        if sql:
            return self._offline_sql("downgrade", target, bind, tag=tag)
        return self.migrate(
            "downgrade",
            target,
            bind,
            lock=lock,
            lock_timeout=lock_timeout,
            on_event=on_event,
            on_plan=on_plan,
            tag=tag,
            parallel=parallel,
        )

    @overload
    def stamp(
        self,
        target: planner.Target = ...,
        bind: BindArg = ...,
        *,
        sql: Literal[False] = ...,
        tag: str | None = ...,
        lock: bool = ...,
        lock_timeout: float | None = ...,
        parallel: int | None = ...,
        purge: bool = ...,
        on_event: executor.EventCallback | None = ...,
        on_plan: Callable[[planner.Plan], None] | None = ...,
    ) -> planner.MigrationResult: ...
    @overload
    def stamp(
        self,
        target: planner.Target = ...,
        bind: BindArg = ...,
        *,
        sql: Literal[True],
        tag: str | None = ...,
        lock: bool = ...,
        lock_timeout: float | None = ...,
        parallel: int | None = ...,
        purge: bool = ...,
        on_event: executor.EventCallback | None = ...,
        on_plan: Callable[[planner.Plan], None] | None = ...,
    ) -> dict[str, str]: ...
    def stamp(
        self,
        target: planner.Target = "heads",
        bind: BindArg = None,
        *,
        sql: bool = False,
        tag: str | None = None,
        lock: bool = True,
        lock_timeout: float | None = None,
        parallel: int | None = None,
        purge: bool = False,
        on_event: executor.EventCallback | None = None,
        on_plan: Callable[[planner.Plan], None] | None = None,
    ) -> planner.MigrationResult | dict[str, str]:
        """Record ``target`` in the version tables without running any migration.

        With ``sql=True`` nothing runs and no lock is taken; the SQL per bind is returned.
        Otherwise each involved database's migration lock is held while its current
        revision is read, the plan made (``on_plan`` sees it) and run.
        """
        if sql:
            return self._offline_sql("stamp", target, bind, tag=tag, purge=purge)
        return self.migrate(
            "stamp",
            target,
            bind,
            lock=lock,
            lock_timeout=lock_timeout,
            on_event=on_event,
            on_plan=on_plan,
            tag=tag,
            parallel=parallel,
            purge=purge,
        )

    def _offline_sql(
        self,
        direction: Literal["upgrade", "downgrade", "stamp"],
        target: planner.Target,
        bind: BindArg,
        *,
        tag: str | None,
        purge: bool = False,
        with_dependencies: bool = False,
    ) -> dict[str, str]:
        plan = self._offline_plan(
            direction, target, bind, purge=purge, with_dependencies=with_dependencies
        )
        return executor.render_sql(plan, self._runtimes(), tag=tag)

    def migrate(
        self,
        direction: Literal["upgrade", "downgrade", "stamp"],
        target: planner.Target,
        bind: BindArg = None,
        *,
        with_dependencies: bool = False,
        purge: bool = False,
        lock: bool = True,
        lock_timeout: float | None = None,
        on_plan: Callable[[planner.Plan], None] | None = None,
        on_event: executor.EventCallback | None = None,
        on_wait: Callable[[Bind], None] | None = None,
        tag: str | None = None,
        parallel: int | None = None,
    ) -> planner.MigrationResult:
        """Lock, plan and run in one go: what ``upgrade``/``downgrade``/``stamp`` do."""
        names = [b.name for b in self._select(bind)]
        parallel = self._parallel(parallel)  # a bad setting is an error even with nothing to do
        quick = None
        if direction == "upgrade" and str(target) in {"heads", "head"}:
            quick = self._quick_graph()
        if quick is not None:
            involved = quick.related(names)
        else:
            involved = _related_binds(direction, names, self._histories())
        involved_binds = [b for b in self.registry if b.name in involved]
        to_lock = involved_binds if lock else []
        timeout = lock_timeout if lock_timeout is not None else self._lock_timeout()
        identities = self._cache().identities
        with locking.lock_binds(to_lock, timeout, identities, on_wait=on_wait):
            # Read under the lock (and checked for shared version tables): not read again.
            current = self._current_heads(involved_binds)
            # The common deploy: nothing to do. Answer it without loading Alembic.
            if quick is not None and all(
                quick.at_heads(n, current[n], single=target == "head") for n in names
            ):
                plan = planner.Plan("upgrade", (), start={}, unchanged=tuple(names))
                if on_plan is not None:
                    on_plan(plan)
                return planner.MigrationResult(plan, ())
            plan = self.plan(
                direction,
                target,
                bind,
                with_dependencies=with_dependencies,
                purge=purge,
                current=current,
            )
            self._import_steps(plan)
            if on_plan is not None:
                on_plan(plan)
            return executor.execute(
                plan,
                self._runtimes(),
                on_event=on_event,
                tag=tag,
                parallel=parallel,
                databases=self._databases(plan),
            )

    def _databases(self, plan: planner.Plan) -> dict[str, DatabaseIdentity]:
        """The identity of each database the plan changes (binds sharing one take turns)."""
        return {name: self._identity(self.registry[name]) for name in plan.binds}

    def _parallel(self, value: int | None) -> int:
        """How many independent binds may migrate at once (``ALEMBIC_PARALLEL``, default 4)."""
        where = "parallel"
        if value is None:
            value = current_app.config.get("ALEMBIC_PARALLEL", 4)
            where = "'ALEMBIC_PARALLEL'"
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(
                f"{where} must be a whole number of at least 1, got {value!r}.",
                hint="Use 1 to migrate binds one after another.",
            )
        return value

    def _import_steps(self, plan: planner.Plan) -> None:
        """Import the code of every step before running any: a broken file changes nothing."""
        runtimes = self._runtimes()
        for step in plan.steps:
            if step.revision is None:
                continue
            script = runtimes[step.bind].script.revision_map.get_revision(step.revision)
            try:
                getattr(script, "module")  # noqa: B009 - importing is the point
            except (SyntaxError, ImportError) as exc:
                raise _import_error(exc, step.path) from None

    def _lock_timeout(self) -> float | None:
        value = current_app.config.get("ALEMBIC_LOCK_TIMEOUT")
        if value is None:
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"'ALEMBIC_LOCK_TIMEOUT' must be a number of seconds, got {value!r}.",
                hint="For example ALEMBIC_LOCK_TIMEOUT = 120.",
            ) from None

    def write_sql(
        self, statements: Mapping[str, str], directory: str | os.PathLike[str]
    ) -> list[Path]:
        """Write offline SQL into ``directory``, one ``BIND.sql`` file per bind."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, sql in statements.items():
            path = folder / f"{bind_directory_name(name)}.sql"
            path.write_text(sql, encoding="utf-8")
            paths.append(path)
        return paths

    def run_plan(
        self,
        plan: planner.Plan,
        *,
        on_event: executor.EventCallback | None = None,
        tag: str | None = None,
        lock: bool = True,
        lock_timeout: float | None = None,
        parallel: int | None = None,
    ) -> planner.MigrationResult:
        """Run a plan made by :meth:`plan`; raises ``MigrationFailedError`` on failure.

        If a bind moved since the plan was made (another process migrated it), nothing
        more runs on it and ``PlanError`` says so: make a new plan.
        """
        binds = [b for b in self.registry if b.name in plan.start]
        timeout = lock_timeout if lock_timeout is not None else self._lock_timeout()
        self._import_steps(plan)
        identities = self._cache().identities
        with locking.lock_binds(binds if lock else [], timeout, identities):
            self._check_version_tables(binds)
            return executor.execute(
                plan,
                self._runtimes(),
                on_event=on_event,
                tag=tag,
                parallel=self._parallel(parallel),
                databases=self._databases(plan),
            )


class _WrittenRevision:
    """A revision file just written, what it was generated from, and what it destroys."""

    __slots__ = ("bind", "changes", "losses", "script")

    def __init__(self, script: Script, bind: str, changes: list[Any], losses: list[str]) -> None:
        self.script = script
        self.bind = bind
        #: Alembic's diff entries the revision was generated from (none for --empty).
        self.changes = changes
        #: One line per operation that drops a table or column or may lose data.
        self.losses = losses


class _Written:
    """What ``revision`` wrote, and why a selected bind got nothing."""

    __slots__ = ("revisions", "skipped")

    def __init__(self) -> None:
        self.revisions: list[_WrittenRevision] = []
        #: Bind name -> why it was not compared with its database.
        self.skipped: dict[str, str] = {}


def data_losses(bind: str, changes: Iterable[Any], dialect: sa.Dialect) -> list[str]:
    """A line for each autogenerated change that can destroy data, naming bind, table, column."""
    lines: list[str] = []
    for change in changes:
        items = change if isinstance(change, list) else [change]
        for item in items:
            kind = item[0]
            if kind == "remove_table":
                table = _qualified(item[1].schema, item[1].name)
                lines.append(f"bind {bind!r}: drops table {table} and every row in it")
            elif kind == "remove_column":
                table = _qualified(item[1], item[2])
                lines.append(
                    f"bind {bind!r}: drops column {table}.{item[3].name} and the data in it"
                )
            elif kind == "modify_type" and _may_lose_data(item[5], item[6]):
                table = _qualified(item[1], item[2])
                lines.append(
                    f"bind {bind!r}: changes column {table}.{item[3]} from "
                    f"{_type_name(item[5], dialect)} to {_type_name(item[6], dialect)}, "
                    "which can lose data"
                )
    return lines


def _qualified(schema: str | None, name: str) -> str:
    return f"{schema}.{name}" if schema else name


def _type_name(type_: Any, dialect: sa.Dialect) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:  # a type this dialect cannot render: its Python spelling will do
        return repr(type_)


_INTEGER_SIZES = {"TINYINT": 1, "SMALLINT": 2, "MEDIUMINT": 3, "INTEGER": 4, "BIGINT": 8}


def _integer_size(type_: Any) -> int:
    if isinstance(type_, sa.BigInteger):
        return 8
    if isinstance(type_, sa.SmallInteger):
        return 2
    return _INTEGER_SIZES.get(str(getattr(type_, "__visit_name__", "")).upper(), 4)


def _may_lose_data(old: Any, new: Any) -> bool:
    """Whether changing a column from ``old`` to ``new`` can lose or alter stored values.

    Only changes known to widen (a longer or unbounded string, a larger integer, a
    number with more digits) are safe; any other change of type may lose data.
    """
    if isinstance(old, sa.Enum) or isinstance(new, sa.Enum):
        return True
    if isinstance(old, sa.String) and isinstance(new, sa.String):
        if new.length is None:
            return False
        return old.length is None or new.length < old.length
    if isinstance(old, sa.Integer) and isinstance(new, sa.Integer):
        return _integer_size(new) < _integer_size(old)
    if (
        isinstance(old, sa.Integer)
        and isinstance(new, sa.Numeric)
        and not isinstance(new, sa.Float)
    ):
        precision, scale = new.precision, new.scale or 0
        return precision is not None and precision - scale < 19
    if type(old) is type(new) and isinstance(old, sa.Numeric):
        if isinstance(old, sa.Float):
            return (new.precision or 53) < (old.precision or 53)
        if new.precision is None:
            return old.scale is not None and new.scale is not None and new.scale < old.scale
        if old.precision is None:
            return True
        old_scale, new_scale = old.scale or 0, new.scale or 0
        return new_scale < old_scale or new.precision - new_scale < old.precision - old_scale
    return True


def _unmanaged_status(bind: Bind) -> BindStatus:
    """The status row of a bind that is not migrated: nothing is read from its database."""
    return BindStatus(
        bind=bind.name,
        url=bind.display_url,
        version_table=_table_name(bind),
        current=(),
        heads=(),
        pending=None,
        state="not managed",
        reason=bind.reason,
    )


def _table_name(bind: Bind) -> str:
    if bind.version_table_schema:
        return f"{bind.version_table_schema}.{bind.version_table}"
    return bind.version_table


class _QuickGraph:
    """Per-bind heads and cross-bind dependencies, read from the revision cache."""

    __slots__ = ("depends", "heads")

    def __init__(
        self, heads: Mapping[str, tuple[str, ...]], depends: Mapping[str, set[str]]
    ) -> None:
        self.heads = heads
        self.depends = depends

    def related(self, names: Iterable[str]) -> set[str]:
        """``names`` and every bind they depend on, directly or not."""
        found = set(names)
        stack = list(found)
        while stack:
            for other in self.depends.get(stack.pop(), ()):
                if other not in found:
                    found.add(other)
                    stack.append(other)
        return found

    def at_heads(self, name: str, current: Iterable[str], *, single: bool) -> bool:
        heads = self.heads.get(name, ())
        if single and len(heads) > 1:
            return False
        return set(current) == set(heads)


def _related_binds(
    direction: str, names: list[str], histories: Mapping[str, planner.BindHistory]
) -> set[str]:
    """The selected binds plus those their cross-bind dependencies reach.

    Only their version tables are read: an unrelated bind that is down does not block.
    """
    related = set(names)
    if direction == "stamp":
        return related
    edges: dict[str, set[str]] = {name: set() for name in histories}
    for name, history in histories.items():
        for deps in history.foreign_dependencies.values():
            for other, _ in deps:
                if direction == "upgrade":
                    edges[name].add(other)
                else:
                    edges[other].add(name)
    stack = list(names)
    while stack:
        for other in edges.get(stack.pop(), ()):
            if other not in related:
                related.add(other)
                stack.append(other)
    return related


class _HeadsReader:
    """Reads version tables on short-lived connections, one per bind.

    The first connection to each database also tells its identity.
    """

    def __init__(self, stack: ExitStack, identities: Identities) -> None:
        self.stack = stack
        self.identities = identities

    def heads(self, bind: Bind) -> tuple[str, ...]:
        connection = self.stack.enter_context(bind.connect())
        self.identities.read(bind.engine, connection)
        try:
            return bind.read_heads(connection)
        except sa.exc.DBAPIError as exc:
            raise DatabaseError(
                f"Cannot read the version table of bind {bind.name!r} at {bind.display_url}: "
                f"{describe_exception(exc, bind.secrets)}",
                bind=bind.name,
                hint="Check the bind's 'version_table' and 'version_table_schema' settings.",
            ) from None


class _LazyMapping(Mapping[str, Any]):
    """A read-only mapping whose values are built on first access."""

    def __init__(self, registry: BindRegistry, factory: Any) -> None:
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


def _load_scripts(script: ScriptDirectory) -> list[Script]:
    """Every revision in the script directory, with load errors turned into clear ones."""
    try:
        with warnings.catch_warnings():
            # Alembic only warns about a missing down_revision, then fails obscurely, and
            # about a revision id used twice, then hides one of the two files.
            warnings.filterwarnings("error", message=r"Revision .* is not present")
            warnings.filterwarnings("error", message=r"Revision .* is present more than once")
            from . import _alembic_compat as compat

            return compat.all_scripts(script)
    except UserWarning as exc:
        if "more than once" in str(exc):
            raise _duplicate_revision_error(script, str(exc)) from None
        raise _missing_revision_error(script, str(exc)) from None
    except (SyntaxError, ImportError) as exc:
        raise _import_error(exc) from None
    except _command_error() as exc:
        raise ScriptDirectoryError(
            f"The migration scripts in {script.dir} are inconsistent: {exc}",
            path=script.dir,
            hint="Fix the down_revision / depends_on of the revision named above.",
        ) from None
    except FlaskAlembicError:
        raise
    except Exception as exc:
        from alembic.script.revision import RevisionError as AlembicRevisionError

        if isinstance(exc, AlembicRevisionError):
            raise ScriptDirectoryError(
                f"The migration scripts in {script.dir} are inconsistent: {exc}",
                path=script.dir,
                hint="Fix the down_revision / depends_on of the revision named above.",
            ) from None
        raise


def _missing_revision_error(script: ScriptDirectory, warning: str) -> ScriptDirectoryError:
    """Name the revision file whose down_revision or depends_on points nowhere."""
    from . import _alembic_compat as compat

    scripts = list(compat.iter_scripts(script))
    known = {s.revision for s in scripts}
    for candidate in scripts:
        wanted = _to_tuple(candidate.down_revision) + _to_tuple(candidate.dependencies)
        missing = [rev for rev in wanted if rev not in known and not _is_label(scripts, rev)]
        if missing:
            return ScriptDirectoryError(
                f"Revision {candidate.revision} ({candidate.path}) refers to revision "
                f"{missing[0]}, which does not exist.",
                revision=candidate.revision,
                path=candidate.path,
                hint="Fix its down_revision / depends_on, or restore the missing file.",
            )
    return ScriptDirectoryError(
        f"The migration scripts in {script.dir} are inconsistent: {warning}",
        path=script.dir,
        hint="Fix the down_revision / depends_on of the revision named above.",
    )


def _duplicate_revision_error(script: ScriptDirectory, warning: str) -> ScriptDirectoryError:
    """Name both files of a revision id that is used twice."""
    from . import _alembic_compat as compat

    paths: dict[str, list[str]] = {}
    for candidate in compat.iter_scripts(script):
        paths.setdefault(candidate.revision, []).append(candidate.path)
    for rev_id, found in paths.items():
        if len(found) > 1:
            return ScriptDirectoryError.for_duplicate_id(rev_id, found[0], found[1])
    return ScriptDirectoryError(  # pragma: no cover - Alembic warned of a duplicate
        f"The migration scripts in {script.dir} are inconsistent: {warning}",
        path=script.dir,
        hint="Give each revision file its own revision id.",
    )


def _is_label(scripts: list[Script], token: str) -> bool:
    return any(token in s.branch_labels for s in scripts)


def _import_error(exc: SyntaxError | ImportError, path: str | None = None) -> ScriptDirectoryError:
    """A clear error for a revision file that cannot be imported."""
    if isinstance(exc, SyntaxError):
        return ScriptDirectoryError(
            f"Revision file {exc.filename} has a syntax error on line {exc.lineno}: {exc.msg}.",
            path=exc.filename,
            hint="Fix the file (or delete it if it was generated by mistake).",
        )
    where = _failing_file(exc) if path is None else path
    if path is not None:
        line = _line_in(exc, path)
        where = f"{path} (line {line})" if line else path
    return ScriptDirectoryError(
        f"Revision file {where} cannot be imported: {exc}.",
        path=path or where,
        hint="Install the missing module or fix the import in that file.",
    )


def _line_in(exc: BaseException, path: str) -> int | None:
    """The line of ``path`` the exception passed through last, if any."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _failing_file(exc: BaseException) -> str:
    tb = exc.__traceback__
    last = "a revision file"
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if (
            filename.endswith(".py")
            and "site-packages" not in filename
            and "importlib" not in filename
        ):
            last = f"{filename} (line {tb.tb_lineno})"
        tb = tb.tb_next
    return last


def _command_error() -> type[Exception]:
    """Alembic's CommandError, imported only when an error is being handled."""
    from alembic.util import CommandError

    return CommandError


def _version_path_of(script: ScriptDirectory, rev_id: str) -> Path:
    return Path(script.get_revision(rev_id).path).resolve().parent


def _to_tuple(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _config_str(value: object) -> str:
    """An Alembic config value: a string, with ``%`` escaped for ConfigParser."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, os.PathLike):
        text = os.fspath(value)
    elif isinstance(value, list | tuple):
        text = "\n".join(str(v) for v in value)
    else:
        text = str(value)
    return str(text).replace("%", "%%")


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
#: What a chosen revision id may be: safe in a file name, a target and a version table.
_REV_ID = re.compile(r"[A-Za-z0-9_]{1,32}")


def _docstring_safe(message: str) -> str:
    """``message`` escaped so it sits inside a triple-quoted docstring unchanged."""
    text = message.replace("\\", "\\\\").replace('"', '\\"')
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


__all__ += ["DEFAULT_BIND"]
