"""Binds: the named databases an app migrates, each with its metadata and options."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import urllib.parse
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

from .errors import ConfigurationError
from .errors import DatabaseError
from .errors import UnknownBindError

__all__ = ["DEFAULT_BIND", "Bind", "BindRegistry", "EnginesArg", "MetadatasArg"]

#: The name of the bind Flask-SQLAlchemy calls ``None``.
DEFAULT_BIND = "default"

# Keys are bind names; ``None`` means the default bind, as in Flask-SQLAlchemy.
MetadatasArg: TypeAlias = (
    sa.MetaData | Iterable[sa.MetaData] | Mapping[Any, sa.MetaData | Iterable[sa.MetaData]]
)
EnginesArg: TypeAlias = sa.Engine | Mapping[Any, sa.Engine]

_BIND_OPTIONS = frozenset(
    {"version_location", "version_table", "version_table_schema", "context", "include"}
)
_SAFE_DIR_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True, eq=False)
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
    #: Tables of other binds that live in this bind's database; autogenerate ignores them.
    neighbour_tables: frozenset[str] = frozenset()

    @property
    def branch_label(self) -> str:
        """The label the first revision of this bind carries."""
        return self.name

    @property
    def version_location(self) -> Path:
        """The directory new revisions of this bind are written to."""
        return self.version_locations[0]

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
            raise DatabaseError(
                f"Cannot connect to bind {self.name!r} at {self.display_url}: "
                f"{describe_exception(exc, self.secrets)}",
                bind=self.name,
                hint="Check that the server is running and that the URL and credentials are right.",
            ) from None
        with connection:
            yield connection

    @property
    def display_url(self) -> str:
        """The database URL, safe to print: the password and secret parameters hidden."""
        return safe_url(self.engine.url)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never be printed: this bind's password in every spelling."""
        return url_secrets(self.engine.url)


def safe_url(url: sa.URL) -> str:
    """Render a URL with its password and any password-like query parameters hidden."""
    secret_keys = [key for key in url.query if _is_secret_key(key)]
    query = {key: ("SECRET" if key in secret_keys else value) for key, value in url.query.items()}
    text = url.set(query=query).render_as_string(hide_password=True)
    for key in secret_keys:  # after rendering, so the stars are not URL-encoded
        text = text.replace(f"{key}=SECRET", f"{key}=***")
    return text


def url_secrets(url: sa.URL) -> tuple[str, ...]:
    """Every spelling of the secrets in ``url``, for scrubbing error text."""
    values: list[str] = []
    if url.password:
        values.append(str(url.password))
    for key, value in url.query.items():
        if _is_secret_key(key):
            values.extend([value] if isinstance(value, str) else value)
    spelled: set[str] = set()
    for value in values:
        if value:
            spelled.update(
                {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}
            )
    # Longest first, so a secret that contains another is scrubbed whole.
    return tuple(sorted(spelled, key=len, reverse=True))


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return "password" in lowered or "secret" in lowered or lowered in {"passwd", "pwd", "token"}


def describe_exception(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """One line describing ``exc``: the database's own message where there is one."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        text = f"{type(exc.orig).__name__}: {exc.orig}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return scrub(" ".join(text.split()), secrets)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in ``text`` with ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def bind_directory_name(name: str) -> str:
    """A directory name for a bind's revisions that is safe on every file system."""
    if _SAFE_DIR_NAME.match(name) and name not in {".", ".."}:
        return name
    slug = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "bind"
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{slug}_{digest}"


class BindRegistry:
    """The binds of one app, in a stable order (the default bind first, then by name)."""

    def __init__(self, binds: Iterable[Bind]) -> None:
        ordered = sorted(binds, key=lambda b: (b.name != DEFAULT_BIND, b.name))
        self._binds: dict[str, Bind] = {b.name: b for b in ordered}
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
            raise UnknownBindError(
                f"Unknown bind {name!r}.",
                bind=name,
                hint=f"Known binds: {self.describe_names()}.",
            ) from None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._binds)

    def describe_names(self) -> str:
        return ", ".join(repr(n) for n in self._binds) or "(none)"

    def select(self, names: str | Iterable[str] | None) -> list[Bind]:
        """The binds named (all of them when ``names`` is ``None``), in registry order."""
        if names is None:
            return list(self)
        wanted = [names] if isinstance(names, str) else list(names)
        if not wanted:
            return list(self)
        for name in wanted:
            self[name]  # raises for an unknown name
        return [b for b in self if b.name in wanted]

    @property
    def default(self) -> Bind:
        """The bind the single-database accessors (``context``, ``op``) use."""
        if DEFAULT_BIND in self._binds:
            return self._binds[DEFAULT_BIND]
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
        """Every bind's version locations, without duplicates, in registry order."""
        seen: dict[Path, None] = {}
        for bind in self:
            for location in bind.version_locations:
                seen.setdefault(location, None)
        return list(seen)


def build_registry(
    app: Flask,
    *,
    script_location: Path,
    extra_default_locations: Iterable[Path],
    engines: EnginesArg | None,
    metadatas: MetadatasArg | None,
) -> BindRegistry:
    """Discover the app's binds from Flask-SQLAlchemy(-Lite) and the explicit arguments."""
    found_engines, found_metadatas, source = _discover(app, engines, metadatas)
    context_defaults = dict(app.config.get("ALEMBIC_CONTEXT") or {})
    bind_options = app.config.get("ALEMBIC_BINDS") or {}
    if not isinstance(bind_options, Mapping):
        raise ConfigurationError(
            "'ALEMBIC_BINDS' must be a dict of bind name -> options.",
            hint='For example ALEMBIC_BINDS = {"stats": {"version_table": "stats_version"}}.',
        )
    for name in bind_options:
        if name not in found_engines:
            raise ConfigurationError(
                f"'ALEMBIC_BINDS[{name!r}]' configures a bind that does not exist.",
                bind=str(name),
                hint=f"Known binds: {', '.join(repr(n) for n in found_engines) or '(none)'}.",
            )
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
        options = dict(bind_options.get(name) or {})
        unknown = set(options) - _BIND_OPTIONS
        if unknown:
            raise ConfigurationError(
                f"'ALEMBIC_BINDS[{name!r}]' has unknown option(s) {', '.join(sorted(unknown))}.",
                bind=name,
                hint=f"Valid options: {', '.join(sorted(_BIND_OPTIONS))}.",
            )
        if not options.get("include", True):
            continue
        if "version_location" in options:
            location = Path(os.fspath(options["version_location"]))
            if not location.is_absolute():
                location = script_location / location
            locations: tuple[Path, ...] = (location.resolve(),)
        elif name == DEFAULT_BIND:
            locations = (script_location.resolve(), *(p.resolve() for p in extra_default_locations))
        else:
            locations = ((script_location / bind_directory_name(name)).resolve(),)
        context = {**context_defaults, **dict(options.get("context") or {})}
        binds.append(
            Bind(
                name=name,
                engine=engine,
                metadatas=tuple(found_metadatas.get(name, ())),
                version_locations=locations,
                version_table=str(options.get("version_table") or "alembic_version"),
                version_table_schema=options.get("version_table_schema"),
                context_options=context,
            )
        )
    if not binds:
        raise ConfigurationError(
            "No database to migrate: every bind is excluded.",
            hint="Remove 'include': False from one bind in 'ALEMBIC_BINDS'.",
        )
    _check_distinct(binds)
    binds = [_with_neighbours(bind, binds) for bind in binds]
    return BindRegistry(binds)


def database_key(url: sa.URL) -> str | None:
    """What identifies the database behind ``url``; ``None`` when it cannot be shared."""
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in {"", ":memory:"} or url.query.get("mode") == "memory":
            return None
        if database.startswith("file:"):
            return f"sqlite:{database}"
        return f"sqlite:{Path(database).resolve()}"
    host = (url.host or "").lower()
    if host in {"localhost", "::1"}:
        host = "127.0.0.1"
    return f"{url.get_backend_name()}://{host}:{url.port or ''}/{url.database or ''}"


def _check_distinct(binds: list[Bind]) -> None:
    """Refuse two binds that would share a version table or a folder of revisions."""
    seen: dict[tuple[str, str, str], Bind] = {}
    folders: dict[Path, Bind] = {}
    for bind in binds:
        key = database_key(bind.engine.url)
        if key is not None:
            slot = (key, bind.version_table_schema or "", bind.version_table)
            other = seen.get(slot)
            if other is not None:
                schema = (
                    f" in schema {bind.version_table_schema!r}" if bind.version_table_schema else ""
                )
                raise ConfigurationError(
                    f"Binds {other.name!r} and {bind.name!r} use the same database and the same "
                    f"version table {bind.version_table!r}{schema}; their histories would "
                    "overwrite each other.",
                    bind=bind.name,
                    hint=(
                        f"Give one its own table: ALEMBIC_BINDS = {{{bind.name!r}: "
                        f"{{'version_table': '{bind_directory_name(bind.name).replace('-', '_')}"
                        "_alembic_version'}}."
                    ),
                )
            seen[slot] = bind
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


def _with_neighbours(bind: Bind, binds: list[Bind]) -> Bind:
    """Keep autogenerate from proposing to drop the tables of binds on the same database."""
    key = database_key(bind.engine.url)
    if key is None:
        return bind
    foreign: set[str] = set()
    for other in binds:
        if other is bind or database_key(other.engine.url) != key:
            continue
        foreign.add(other.version_table)
        for metadata in other.metadatas:
            foreign.update(table.name for table in metadata.tables.values())
    own = {t.name for m in bind.metadatas for t in m.tables.values()} | {bind.version_table}
    foreign -= own
    if not foreign:
        return bind
    return dataclasses.replace(bind, neighbour_tables=frozenset(foreign))


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
