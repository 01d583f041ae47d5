"""Binds: the named databases an app migrates, each with its metadata and options."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import TypeAlias

import sqlalchemy as sa
from flask import Flask

from . import config
from . import revision_cache
from .errors import BindNotManagedError
from .errors import ConfigurationError
from .errors import DatabaseError
from .errors import Hint
from .errors import UnknownBindError
from .identity import backend_of
from .identity import DatabaseIdentity
from .identity import Identities
from .identity import same_version_table
from .identity import url_key
from .redact import describe_exception
from .redact import safe_url
from .redact import url_secrets

__all__ = [
    "DEFAULT_BIND",
    "Bind",
    "BindRegistry",
    "EnginesArg",
    "MetadatasArg",
    "Neighbourhood",
    "registry_order",
]

#: The name of the bind Flask-SQLAlchemy calls ``None``.
DEFAULT_BIND = "default"

# Keys are bind names; ``None`` means the default bind, as in Flask-SQLAlchemy.
MetadatasArg: TypeAlias = (
    sa.MetaData | Iterable[sa.MetaData] | Mapping[Any, sa.MetaData | Iterable[sa.MetaData]]
)
EnginesArg: TypeAlias = sa.Engine | Mapping[Any, sa.Engine]

_SAFE_DIR_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True, eq=False, kw_only=True)
class Bind:
    """A named database with its own metadata, history branch and version table."""

    name: str
    engine: sa.Engine
    metadatas: tuple[sa.MetaData, ...]
    #: Absolute directories holding this bind's revision files; the first is where new ones go.
    version_locations: tuple[Path, ...]
    version_table: str = "alembic_version"
    version_table_schema: str | None = None
    #: Options for ``EnvironmentContext.configure``, already merged over ``ALEMBIC_CONTEXT``.
    context_options: Mapping[str, Any] = field(default_factory=dict)
    #: Whether Flask-Alembic migrates this bind. One that is not is never connected to for
    #: a migration, locked, stamped or compared: it is only listed by ``status``.
    managed: bool = True
    #: Why the bind is managed or not, as ``status`` says it.
    reason: str = "it has models"
    #: SQLite only: ``False`` runs each migration with foreign keys off (checked with
    #: ``PRAGMA foreign_key_check`` before it commits); ``None`` leaves them as they are.
    sqlite_foreign_keys: bool | None = None
    #: Server-side timeouts (seconds; ``None``: the server's own setting) each migration
    #: step runs with, from ``ALEMBIC_BINDS[name]['timeouts']``: see ``timeouts.py``.
    timeouts: Mapping[str, float | None] = field(default_factory=dict)

    @property
    def branch_label(self) -> str:
        """The label the first revision of this bind carries."""
        return self.name

    @property
    def version_location(self) -> Path:
        """The directory new revisions of this bind are written to."""
        return self.version_locations[0]

    @property
    def tables(self) -> frozenset[str]:
        """The names of the tables this bind's models describe."""
        return frozenset(table.name for m in self.metadatas for table in m.tables.values())

    @property
    def has_models(self) -> bool:
        return any(m.tables for m in self.metadatas)

    @property
    def backend(self) -> str:
        """The kind of server: binds of different kinds never share a database."""
        return backend_of(self.engine.url)

    @property
    def target_metadata(self) -> sa.MetaData | list[sa.MetaData] | None:
        """The metadata to hand to Alembic's autogenerate, in the shape it accepts."""
        if not self.metadatas:
            return None
        if len(self.metadatas) == 1:
            return self.metadatas[0]
        return list(self.metadatas)

    def read_heads(self, connection: sa.Connection) -> tuple[str, ...]:
        """The revisions recorded in this bind's version table (none if it does not exist)."""
        if not sa.inspect(connection).has_table(
            self.version_table, schema=self.version_table_schema
        ):
            return ()
        table = sa.table(
            self.version_table, sa.column("version_num"), schema=self.version_table_schema
        )
        return tuple(row[0] for row in connection.execute(sa.select(table.c.version_num)))

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A connection to this bind's database; failing to connect is a clear error."""
        try:
            connection = self.engine.connect()
        except sa.exc.DBAPIError as exc:
            raise self.database_error(
                "connect to",
                exc,
                "Check that the server is running and that the URL and credentials are right.",
            ) from None
        with connection:
            yield connection

    def database_error(self, action: str, exc: BaseException, hint: Hint) -> DatabaseError:
        """``action`` (``"connect to"``) failed on this bind's database with ``exc``."""
        return DatabaseError(
            f"Cannot {action} bind {self.name!r} at {self.display_url}: "
            f"{describe_exception(exc, self.secrets)}",
            bind=self.name,
            hint=hint,
        )

    def identity(self, identities: Identities) -> DatabaseIdentity:
        """The database this bind reaches, asking its server if no connection did yet.

        An unreachable server, or a bind that is not managed (never connected to), gives
        an identity that rests on the URL alone.
        """
        found = identities.get(self.engine)
        if found is None and not self.managed:
            # Never connected to: only its URL says which database it is.
            return DatabaseIdentity(self.backend, url_key(self.engine.url, self.engine))
        if found is None:
            try:
                with self.connect() as connection:
                    found = identities.read(self.engine, connection)
            except DatabaseError:
                found = identities.remember_unreachable(self.engine)
        return found

    @property
    def display_url(self) -> str:
        """The database URL, safe to print: the password and secret parameters hidden."""
        return safe_url(self.engine.url)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never be printed: this bind's password in every spelling."""
        return url_secrets(self.engine.url)

    def not_managed_error(self) -> BindNotManagedError:
        """The error for a command that names this bind while it is not managed."""
        if self.managed:  # pragma: no cover - callers check
            raise AssertionError(self.name)
        if not self.reason.startswith("excluded"):
            hint = (
                "Give it models (and import them before the first command), or set "
                f"ALEMBIC_BINDS = {{{self.name!r}: {{'include': True}}}} to migrate it with "
                "revisions written by hand."
            )
        else:
            hint = f"Remove 'include': False from ALEMBIC_BINDS[{self.name!r}] to migrate it."
        return BindNotManagedError(
            f"Bind {self.name!r} is not managed: {self.reason}.", bind=self.name, hint=hint
        )


def bind_directory_name(name: str) -> str:
    """A directory name for a bind's revisions that is safe on every file system."""
    if _SAFE_DIR_NAME.match(name) and name not in {".", ".."}:
        return name
    slug = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "bind"
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{slug}_{digest}"


class BindRegistry:
    """The binds of one app, in a stable order (the default bind first, then by name).

    Iterating, ``names``, ``in`` and ``registry[name]`` see only the *managed* binds, the
    ones Flask-Alembic migrates; :attr:`all` has every bind, for ``status``.
    """

    def __init__(self, binds: Iterable[Bind]) -> None:
        ordered = sorted(binds, key=registry_order)
        self._all: dict[str, Bind] = {b.name: b for b in ordered}
        self._binds: dict[str, Bind] = {b.name: b for b in ordered if b.managed}
        self._by_folder: dict[str, Bind] | None = None

    def __iter__(self) -> Iterator[Bind]:
        return iter(self._binds.values())

    def __len__(self) -> int:
        return len(self._binds)

    def __contains__(self, name: object) -> bool:
        return name in self._binds

    def __getitem__(self, name: str) -> Bind:
        try:
            return self._binds[name]
        except KeyError:
            pass
        if name in self._all:
            raise self._all[name].not_managed_error()
        raise UnknownBindError(
            f"Unknown bind {name!r}.",
            bind=name,
            hint=f"Known binds: {self.describe_names()}.",
        )

    @property
    def all(self) -> tuple[Bind, ...]:
        """Every bind, managed or not, in registry order."""
        return tuple(self._all.values())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._binds)

    def describe_names(self) -> str:
        return ", ".join(repr(n) for n in self._all) or "(none)"

    def select(self, names: str | Iterable[str] | None, *, unmanaged: bool = False) -> list[Bind]:
        """The binds named (all of them when ``names`` is ``None``), in registry order.

        Only managed binds, unless ``unmanaged``: naming a bind that is not managed is then
        an error, and so is having no managed bind at all.
        """
        pool = self._all if unmanaged else self._binds
        wanted = [names] if isinstance(names, str) else list(names or ())
        if not wanted:
            if not pool:
                raise self._nothing_managed()
            return list(pool.values())
        for name in wanted:
            if name not in pool:
                self[name]  # raises: unknown, or not managed
        return [b for b in pool.values() if b.name in wanted]

    def _nothing_managed(self) -> ConfigurationError:
        reasons = "; ".join(f"{b.name!r}: {b.reason}" for b in self._all.values())
        return ConfigurationError(
            f"No bind is managed ({reasons}), so there is nothing to migrate.",
            hint=(
                "Define the models and import them before the first command (an app factory "
                "that never imports its models has empty metadata), or set 'include': True "
                "in ALEMBIC_BINDS for a bind to migrate with revisions written by hand."
            ),
        )

    @property
    def default(self) -> Bind:
        """The bind the single-database accessors (``context``, ``op``) use."""
        if DEFAULT_BIND in self._all:
            return self[DEFAULT_BIND]  # raises if it is not managed
        if len(self._binds) == 1:
            return next(iter(self._binds.values()))
        raise UnknownBindError(
            "This app has no 'default' bind.",
            hint=(
                "Use the per-bind accessors instead, e.g. alembic.migration_contexts[name] "
                f"or alembic.ops[name]; binds: {self.describe_names()}."
            ),
        )

    def bind_for_path(self, path: str | os.PathLike[str]) -> Bind | None:
        """The bind whose version location holds the revision file at ``path``."""
        found = self.bind_for_location(os.path.dirname(os.fspath(path)))
        if found is None:  # a path spelled differently (symlinks, ..): compare real paths
            found = self.bind_for_location(str(Path(path).resolve().parent))
        return found

    def bind_for_location(self, folder: str) -> Bind | None:
        """The bind with ``folder`` (spelled as in :attr:`Bind.version_locations`) as a location."""
        if self._by_folder is None:
            self._by_folder = {
                str(location): bind for bind in self for location in bind.version_locations
            }
        return self._by_folder.get(folder)

    def version_locations(self) -> list[Path]:
        """Every managed bind's version locations, without duplicates, in registry order."""
        seen: dict[Path, None] = {}
        for bind in self:
            for location in bind.version_locations:
                seen.setdefault(location, None)
        return list(seen)

    def check_version_tables(self, binds: Iterable[Bind], identities: Identities) -> None:
        """Refuse any of ``binds`` whose version table is also another managed bind's.

        Two URLs spelled differently may reach one database; so the servers are asked
        (each bind of the same kind of server that no connection has identified yet is
        connected to once). A server that cannot be reached is compared by its URL.
        """
        selected = list(binds)
        backends = {b.backend for b in selected}
        candidates = [b for b in self if b.backend in backends]
        if len(candidates) < 2:
            return
        for bind in selected:
            bind.identity(identities)  # the selected binds' servers are asked first
        if not _may_clash([(b, b.identity(identities)) for b in candidates]):
            return  # the usual case, told in one pass instead of comparing every pair
        for first in selected:
            mine = first.identity(identities)
            for other in candidates:
                if other is first or other.backend != first.backend:
                    continue
                theirs = other.identity(identities)
                a, b = sorted([first, other], key=registry_order)
                if same_version_table(
                    mine,
                    (first.version_table_schema, first.version_table),
                    theirs,
                    (other.version_table_schema, other.version_table),
                ):
                    raise _shared_version_table(a, b)
                if (
                    mine.known
                    and theirs.known
                    and not mine.comparable(theirs)
                    and mine.url_key != theirs.url_key
                    and mine.name(first.version_table) == theirs.name(other.version_table)
                    and mine.name(first.version_table_schema or "")
                    == theirs.name(other.version_table_schema or "")
                ):
                    raise _cannot_tell_apart(a, b)

    def neighbourhood(self, bind: Bind, identities: Identities) -> Neighbourhood:
        """What ``bind``'s autogenerate must leave alone in its database.

        The tables and version tables of the other binds (excluded ones too) that the
        database can reach: on MySQL and MariaDB, every database of the server. A bind of
        the same kind of server that cannot be told apart (unreachable, not managed and so
        never connected to, or answering in other terms) counts as a neighbour, its
        unqualified tables in any schema: leaving a table alone is safe, dropping it is
        not. Two managed binds of one database with a model for the same table are
        refused: each would migrate it its own way.
        """
        mine = bind.identity(identities)
        own = {
            _resolved(mine, table.schema, table.name)
            for metadata in bind.metadatas
            for table in metadata.tables.values()
        }
        own_version = _resolved(mine, bind.version_table_schema, bind.version_table)
        foreign: set[tuple[str, str]] = set()
        for other in self.all:
            if other is bind or other.backend != bind.backend:
                continue
            theirs = other.identity(identities)
            if mine.apart_from(theirs):
                continue
            # Their unqualified names are in their default schema, which only their
            # server knows (a search_path, a role's schema): unknown means any schema.
            default = theirs.default_schema if theirs.known else "*"
            tables = {
                _resolved(mine, table.schema or default, table.name)
                for metadata in other.metadatas
                for table in metadata.tables.values()
            }
            clash = own & tables
            if clash and other.managed and mine.comparable(theirs):
                raise _shared_table(bind, other, sorted(clash)[0])
            foreign |= tables
            foreign.add(_resolved(mine, other.version_table_schema or default, other.version_table))
        schemas = {schema for schema, _ in own | {own_version}}
        return Neighbourhood(identity=mine, foreign=foreign - own - {own_version}, schemas=schemas)


def registry_order(bind: Bind) -> tuple[bool, str]:
    """The order binds are listed in: the default bind first, then by name."""
    return (bind.name != DEFAULT_BIND, bind.name)


def _resolved(identity: DatabaseIdentity, schema: str | None, name: str) -> tuple[str, str]:
    """A ``(schema, name)`` key as ``identity``'s database compares it."""
    return identity.name(schema or identity.default_schema or ""), identity.name(name)


def _cannot_tell_apart(first: Bind, second: Bind) -> ConfigurationError:
    """Two binds whose servers answer in terms that cannot be compared, with one table name."""
    return ConfigurationError(
        f"Cannot tell whether binds {first.name!r} and {second.name!r} reach the same "
        f"database ({first.display_url} and {second.display_url}: their servers answer "
        "this role's identity queries differently), and both record revisions in "
        f"{second.version_table!r}; they might overwrite each other's history.",
        bind=second.name,
        hint=(
            f"Give one its own table: ALEMBIC_BINDS = {{{second.name!r}: "
            f"{{'version_table': '{bind_directory_name(second.name).replace('-', '_')}"
            "_alembic_version'}}, or let both roles execute pg_postmaster_start_time()."
        ),
    )


def _shared_table(first: Bind, second: Bind, table: tuple[str, str]) -> ConfigurationError:
    """Two managed binds of one database that both have a model for one table."""
    schema, name = table
    return ConfigurationError(
        f"Binds {first.name!r} and {second.name!r} both have a model for table "
        f"{schema}.{name} in the same database; each would migrate it to its own models "
        "(dropping the other's columns).",
        bind=first.name,
        hint=(
            f"Keep the model in one bind, or set 'include': False in "
            f"ALEMBIC_BINDS[{second.name!r}] for a bind that only reads the database."
        ),
    )


class Neighbourhood:
    """What one bind's autogenerate leaves alone: the tables of other binds in its
    database, and the schemas its models do not use (with ``include_schemas``)."""

    __slots__ = ("foreign", "identity", "schemas")

    def __init__(
        self,
        *,
        identity: DatabaseIdentity,
        foreign: Iterable[tuple[str, str]],
        schemas: Iterable[str],
    ) -> None:
        self.identity = identity
        #: Other binds' tables and version tables, as ``(schema, name)`` keys.
        self.foreign = frozenset(foreign)
        #: The schemas this bind's tables and version table are in.
        self.schemas = frozenset(schemas)

    def hides_table(self, schema: str | None, name: str) -> bool:
        """Whether the table ``name`` in ``schema`` (``None``: the default one) is another's."""
        key = _resolved(self.identity, schema, name)
        return key in self.foreign or ("*", key[1]) in self.foreign

    def hides_schema(self, schema: str | None) -> bool:
        """Whether ``schema`` (``None``: the default one) holds nothing of this bind's."""
        resolved, _ = _resolved(self.identity, schema, "")
        return resolved not in self.schemas


def _may_clash(found: list[tuple[Bind, DatabaseIdentity]]) -> bool:
    """Whether two of these binds might be refused by the pairwise checks of
    :meth:`BindRegistry.check_version_tables`: keys that two binds share when a check
    could fail for them, so that a history with many binds is told apart in one pass.
    ``True`` sends the caller to the exact comparison of every pair."""
    seen: set[tuple[str | None, ...]] = set()
    # (backend, version table, schema) of known identities -> the ways their servers
    # answered: two binds answered in different terms cannot always be told apart.
    answers: dict[tuple[str, ...], set[str]] = {}
    for bind, identity in found:
        table = (bind.version_table_schema, bind.version_table)
        keys: list[tuple[str | None, ...]] = [identity.url_version_table_key(*table)]
        if identity.known:
            keys.append(("server", *identity.version_table_key(*table)))
            names = (
                identity.backend,
                identity.name(bind.version_table),
                identity.name(bind.version_table_schema or ""),
            )
            answers.setdefault(names, set()).add(str(identity.server).split(" ", 1)[0])
        for key in keys:
            if key in seen:
                return True
            seen.add(key)
    return any(len(kinds) > 1 for kinds in answers.values())


def _shared_version_table(first: Bind, second: Bind) -> ConfigurationError:
    """Two binds, in registry order, that would record their revisions in one table.

    The fix is given for the second: the default bind keeps the table it has.
    """
    schema = f" in schema {second.version_table_schema!r}" if second.version_table_schema else ""
    how = (
        f" ({first.display_url} and {second.display_url} reach the same database)"
        if first.engine.url != second.engine.url
        else ""
    )
    return ConfigurationError(
        f"Binds {first.name!r} and {second.name!r} use the same database and the same "
        f"version table {second.version_table!r}{schema}{how}; their histories would "
        "overwrite each other.",
        bind=second.name,
        hint=(
            f"Give one its own table: ALEMBIC_BINDS = {{{second.name!r}: "
            f"{{'version_table': '{bind_directory_name(second.name).replace('-', '_')}"
            "_alembic_version'}}."
        ),
    )


def build_registry(
    app: Flask, *, engines: EnginesArg | None, metadatas: MetadatasArg | None
) -> BindRegistry:
    """Discover the app's binds from Flask-SQLAlchemy(-Lite) and the explicit arguments."""
    found_engines, found_metadatas, source = _discover(app, engines, metadatas)
    script_location = config.script_location(app)
    context_defaults = config.context_defaults(app)
    settings = config.bind_settings(app, found_engines)
    for name, items in found_metadatas.items():
        # Flask-SQLAlchemy always has a default metadata; a binds-only app leaves it empty.
        if name not in found_engines and any(m.tables for m in items):
            raise ConfigurationError(
                f"Metadata was given for bind {name!r}, but there is no engine for it.",
                bind=name,
                hint=_missing_engine_hint(source, name),
            )

    binds: list[Bind] = []
    for name, engine in found_engines.items():
        options = settings[name]
        foreign_keys = options.get("sqlite_foreign_keys")
        if foreign_keys is not None and (
            not isinstance(foreign_keys, bool) or backend_of(engine.url) != "sqlite"
        ):
            raise ConfigurationError(
                f"'ALEMBIC_BINDS[{name!r}]['sqlite_foreign_keys']' must be True or False, "
                f"on a SQLite bind; got {foreign_keys!r} for a {engine.url.get_backend_name()} "
                "database.",
                bind=name,
                hint="Set it to False on a SQLite bind whose migrations rebuild tables that "
                "others reference; remove it elsewhere.",
            )
        if "version_location" in options:
            location = Path(os.fspath(options["version_location"]))
            if not location.is_absolute():
                location = script_location / location
            locations: tuple[Path, ...] = (location.resolve(),)
        elif name == DEFAULT_BIND:
            extra = config.extra_locations(app)
            first = _default_location(script_location, found_engines)
            locations = (first.resolve(), *(p.resolve() for p in extra))
        else:
            locations = ((script_location / bind_directory_name(name)).resolve(),)
        context = {**context_defaults, **dict(options.get("context") or {})}
        bind = Bind(
            name=name,
            engine=engine,
            metadatas=tuple(found_metadatas.get(name, ())),
            version_locations=locations,
            version_table=str(options.get("version_table") or "alembic_version"),
            version_table_schema=options.get("version_table_schema"),
            context_options=context,
            sqlite_foreign_keys=foreign_keys,
            timeouts=config.bind_timeouts(name, options.get("timeouts"), backend_of(engine.url)),
        )
        managed, reason = _management(bind, options.get("include"))
        binds.append(dataclasses.replace(bind, managed=managed, reason=reason))
    _check_distinct(sorted((b for b in binds if b.managed), key=registry_order))
    return BindRegistry(binds)


#: The folder Alembic and Flask-Migrate keep their revisions in, inside the script directory.
VERSIONS_FOLDER = "versions"


def _default_location(script_location: Path, names: Iterable[str]) -> Path:
    """The default bind's folder when ``ALEMBIC_BINDS`` sets none: the script directory,
    or its ``versions/`` folder (the layout of Alembic and Flask-Migrate) when that is a
    folder, no other bind keeps its revisions there, and the top of the script directory
    holds no revision file."""
    versions = script_location / VERSIONS_FOLDER
    if (
        versions.is_dir()
        and not any(n != DEFAULT_BIND and bind_directory_name(n) == VERSIONS_FOLDER for n in names)
        and not revision_cache.holds_revisions(script_location)
    ):
        return versions
    return script_location


def _management(bind: Bind, include: bool | None) -> tuple[bool, str]:
    """Whether ``bind`` is migrated, and why: an engine without models is left alone."""
    if include is False:
        return False, f"excluded: ALEMBIC_BINDS[{bind.name!r}] has 'include': False"
    if bind.has_models:
        return True, "it has models"
    if include is True:
        return True, f"included: ALEMBIC_BINDS[{bind.name!r}] has 'include': True"
    if any(revision_cache.holds_revisions(location) for location in bind.version_locations):
        return True, "its folder holds revisions"
    return False, "it has no models: its metadata has no tables"


def _check_distinct(binds: list[Bind]) -> None:
    """Refuse two binds whose URLs name one version table, or that share a folder.

    URLs spelled differently are told apart by the servers, once connected
    (:meth:`BindRegistry.check_version_tables`).
    """
    seen: dict[tuple[str, ...], Bind] = {}
    folders: dict[Path, Bind] = {}
    for bind in binds:
        # Before any server is asked: by URL, with names as the database compares them.
        slot = DatabaseIdentity(bind.backend, url_key(bind.engine.url, bind.engine))
        key = slot.url_version_table_key(bind.version_table_schema, bind.version_table)
        other = seen.get(key)
        if other is not None:
            raise _shared_version_table(other, bind)
        seen[key] = bind
        for folder in bind.version_locations:
            owner = folders.get(folder)
            if owner is not None:
                raise ConfigurationError(
                    f"Binds {owner.name!r} and {bind.name!r} both keep their revisions in "
                    f"{folder}.",
                    bind=bind.name,
                    path=str(folder),
                    hint=f"Set a distinct ALEMBIC_BINDS[{bind.name!r}]['version_location'].",
                )
            folders[folder] = bind


def _missing_engine_hint(source: str, name: str) -> str:
    if source == "flask_sqlalchemy":
        return f'Add it to SQLALCHEMY_BINDS, e.g. SQLALCHEMY_BINDS = {{"{name}": "sqlite:///{name}.db"}}.'
    if source == "flask_sqlalchemy_lite":
        return f'Add it to SQLALCHEMY_ENGINES, e.g. SQLALCHEMY_ENGINES = {{"{name}": "sqlite:///{name}.db"}}.'
    return f"Pass an engine for it: Alembic(engines={{{name!r}: engine, ...}})."


def _bind_name(key: str | None) -> str:
    return DEFAULT_BIND if key is None else str(key)


def _normalize_metadatas(metadatas: MetadatasArg) -> dict[str, list[sa.MetaData]]:
    if isinstance(metadatas, sa.MetaData):
        return {DEFAULT_BIND: [metadatas]}
    if isinstance(metadatas, Mapping):
        result: dict[str, list[sa.MetaData]] = {}
        for key, value in metadatas.items():
            items = [value] if isinstance(value, sa.MetaData) else list(value)
            _check_metadata_items(items, f"metadatas[{key!r}]")
            result[_bind_name(key)] = items
        return result
    items = list(metadatas)
    _check_metadata_items(items, "metadatas")
    return {DEFAULT_BIND: items}


def _check_metadata_items(items: list[Any], where: str) -> None:
    for item in items:
        if not isinstance(item, sa.MetaData):
            raise ConfigurationError(
                f"'{where}' must hold sqlalchemy.MetaData objects, got {type(item).__name__}.",
                hint="Pass Model.metadata (or a list or dict of them).",
            )


def _normalize_engines(engines: EnginesArg) -> dict[str, sa.Engine]:
    if isinstance(engines, sa.Engine):
        return {DEFAULT_BIND: engines}
    result: dict[str, sa.Engine] = {}
    for key, value in engines.items():
        if not isinstance(value, sa.Engine):
            raise ConfigurationError(
                f"'engines[{key!r}]' must be a sqlalchemy.Engine, got {type(value).__name__}.",
                hint="Pass engines created with sqlalchemy.create_engine().",
            )
        result[_bind_name(key)] = value
    return result


def _discover(
    app: Flask, engines: EnginesArg | None, metadatas: MetadatasArg | None
) -> tuple[dict[str, sa.Engine], dict[str, list[sa.MetaData]], str]:
    db = app.extensions.get("sqlalchemy")
    found_engines: dict[str, sa.Engine] = {}
    found_metadatas: dict[str, list[sa.MetaData]] = {}
    source = "plain"

    if db is not None and hasattr(db, "engines"):
        # Both Flask-SQLAlchemy and Flask-SQLAlchemy-Lite expose the current app's
        # engines as ``db.engines``; only Flask-SQLAlchemy knows the models' metadata.
        found_engines = {_bind_name(k): v for k, v in db.engines.items()}
        db_metadatas = getattr(db, "metadatas", None)
        if isinstance(db_metadatas, Mapping):
            source = "flask_sqlalchemy"
            found_metadatas = {_bind_name(k): [v] for k, v in db_metadatas.items()}
        else:
            source = "flask_sqlalchemy_lite"

    if engines is not None:
        found_engines.update(_normalize_engines(engines))
    if metadatas is not None:
        found_metadatas.update(_normalize_metadatas(metadatas))

    if not found_engines:
        if source == "flask_sqlalchemy_lite":
            raise ConfigurationError(
                "Flask-SQLAlchemy-Lite has no engines configured.",
                hint='Set SQLALCHEMY_ENGINES = {"default": "sqlite:///app.db"}.',
            )
        raise ConfigurationError(
            "No database engine found.",
            hint=(
                "Initialize Flask-SQLAlchemy or Flask-SQLAlchemy-Lite before Flask-Alembic, "
                "or pass engines: Alembic(engines=engine, metadatas=metadata)."
            ),
        )
    if not found_metadatas:
        if source == "flask_sqlalchemy_lite":
            raise ConfigurationError(
                "Flask-SQLAlchemy-Lite does not know your models' metadata.",
                hint="Pass it to the extension: Alembic(metadatas=Model.metadata).",
            )
        raise ConfigurationError(
            "No metadata found to compare the database with.",
            hint="Pass it to the extension: Alembic(metadatas=Model.metadata).",
        )
    return found_engines, found_metadatas, source
