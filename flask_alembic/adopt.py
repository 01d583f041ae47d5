"""Adopting a project from Flask-Migrate, Flask-Alembic 3 or plain Alembic (``flask db adopt``).

Finds the old tool's files where that tool would (the app's root and the current
directory: ``migrations/``, ``alembic.ini`` and the ``script_location`` it names), tells
the layout apart, reads the options given as literals (``alembic.ini`` with configparser,
``env.py`` with :mod:`ast`, Flask-Migrate's ``configure_args`` when it is still
registered), and works out the ``ALEMBIC``, ``ALEMBIC_CONTEXT`` and ``ALEMBIC_BINDS``
settings to use. Every bind's version rows are read before, and its status with those
settings after. No migration ever runs: a single-database project changes nowhere, and
what cannot be read is said, not guessed.
"""

from __future__ import annotations

import ast
import configparser
import copy
import dataclasses
import json
import os
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from typing import TYPE_CHECKING

import sqlalchemy as sa
from flask import Flask

from . import config
from . import locking
from . import revision_cache
from .errors import AdoptError
from .errors import Command
from .errors import DatabaseError
from .errors import FlaskAlembicError
from .identity import Identities
from .loader import Loader
from .redact import describe_exception
from .registry import Bind
from .registry import build_registry
from .registry import DEFAULT_BIND
from .registry import EnginesArg
from .registry import MetadatasArg
from .status import BindStatus
from .status import HeadsReader
from .status import read_status
from .status import version_table_name

if TYPE_CHECKING:
    from .lockstep import Conversion

__all__ = [
    "SETTINGS",
    "Adoption",
    "BindRows",
    "FileChange",
    "Kind",
    "Layout",
    "Option",
    "Stamp",
    "adopt",
    "find_layout",
    "read_env_options",
    "read_ini_options",
]

#: The settings ``adopt`` works out, in the order they are shown.
SETTINGS = ("ALEMBIC", "ALEMBIC_CONTEXT", "ALEMBIC_BINDS")


class Kind(StrEnum):
    """The tool a migrations folder was written for; the value is the JSON word."""

    FLASK_MIGRATE = "flask-migrate"
    FLASK_MIGRATE_MULTIDB = "flask-migrate-multidb"
    FLASK_ALEMBIC_3 = "flask-alembic-3"
    FLASK_ALEMBIC_3_MULTIDB = "flask-alembic-3-multidb"
    ALEMBIC = "alembic"
    #: This package's own layout: nothing to convert.
    FLASK_ALEMBIC = "flask-alembic"

    @property
    def description(self) -> str:
        return _TITLES[self]

    @property
    def lockstep(self) -> bool:
        """Whether one history drives every database (``upgrade(engine_name)``)."""
        return self in {Kind.FLASK_MIGRATE_MULTIDB, Kind.FLASK_ALEMBIC_3_MULTIDB}


_TITLES = {
    Kind.FLASK_MIGRATE: "Flask-Migrate, one database",
    Kind.FLASK_MIGRATE_MULTIDB: "Flask-Migrate, several databases (--multidb)",
    Kind.FLASK_ALEMBIC_3: "Flask-Alembic 3, one database",
    Kind.FLASK_ALEMBIC_3_MULTIDB: "Flask-Alembic 3, several databases",
    Kind.ALEMBIC: "Alembic (alembic.ini and env.py)",
    Kind.FLASK_ALEMBIC: "Flask-Alembic",
}


@dataclass(frozen=True, kw_only=True)
class Layout:
    """Where the old tool keeps its files, and which tool that is."""

    kind: Kind
    #: The migrations folder (the old tool's script location).
    script_location: Path
    #: The folder holding the old revision files.
    revisions: Path
    #: The ``alembic.ini`` read, if any.
    ini: Path | None = None
    #: The ``env.py`` read, if any.
    env: Path | None = None
    #: The revision files whose ``upgrade`` takes an ``engine_name``.
    lockstep_files: tuple[Path, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Option:
    """An option read from the old tool's files: where it goes and where it came from."""

    #: The setting and key it becomes, such as ``ALEMBIC_CONTEXT['compare_type']``.
    setting: str
    value: Any
    #: Where it was read: ``migrations/env.py, line 12``.
    source: str


@dataclass(frozen=True, kw_only=True)
class BindRows:
    """A bind's version rows as read before anything is done."""

    bind: str
    version_table: str
    rows: tuple[str, ...] = ()
    #: Rows that name no revision of the old history.
    unknown: tuple[str, ...] = ()
    error: FlaskAlembicError | None = None


@dataclass(frozen=True, kw_only=True)
class FileChange:
    """A file a lockstep conversion writes (``write``), moves into the archive
    (``archive``: ``old`` is where it goes) or replaces (``replace``: the template)."""

    action: str
    path: Path
    bind: str | None = None
    #: The new file's revision id.
    revision: str | None = None
    #: The old revision id a new file comes from, or an archived file's new place.
    old: str | None = None


@dataclass(frozen=True, kw_only=True)
class Stamp:
    """A bind's version rows mapped from the old ids it recorded to its own new ids."""

    bind: str
    version_table: str
    old: tuple[str, ...]
    new: tuple[str, ...]
    #: Whether the rows hold the new ids (already, or now).
    done: bool


@dataclass(frozen=True, kw_only=True)
class Adoption:
    """What ``adopt`` found, worked out and did."""

    layout: Layout
    #: ``ALEMBIC``, ``ALEMBIC_CONTEXT`` and ``ALEMBIC_BINDS`` as the app must have them.
    settings: Mapping[str, Any]
    #: Whether the app already has exactly these settings.
    configured: bool
    read: tuple[Option, ...] = ()
    #: What could not be read, or is not carried over, one sentence each.
    notes: tuple[str, ...] = ()
    before: tuple[BindRows, ...] = ()
    #: Each bind's status with the settings above (``None`` with ``plan``).
    after: tuple[BindStatus, ...] | None = None
    #: Whether this was only a plan: nothing was written.
    planned: bool = False
    #: The files written, moved or replaced (lockstep conversions only).
    files: tuple[FileChange, ...] = ()
    #: Each bind's version rows, mapped (lockstep conversions only).
    stamps: tuple[Stamp, ...] = ()


# -- finding the old tool's files ---------------------------------------------------------


def _candidates(app: Flask, source: Path | None) -> list[Path]:
    """Where to look, in order: ``source``, Flask-Migrate's folder, then the app's root
    and the current directory (each: ``alembic.ini``, then ``migrations/``)."""
    if source is not None:
        return [source.absolute()]
    found: list[Path] = []
    migrate = app.extensions.get("migrate")
    directory = getattr(migrate, "directory", None)
    if isinstance(directory, str | os.PathLike):
        found.append(Path(directory).absolute())  # Flask-Migrate: relative to the cwd
    for base in (Path(app.root_path), Path.cwd()):
        found += [base.absolute() / "alembic.ini", base.absolute() / "migrations"]
    unique: dict[Path, None] = {}
    for path in found:
        unique.setdefault(path, None)
    return list(unique)


def find_layout(app: Flask, source: Path | None = None) -> Layout:
    """The old tool's layout, from ``source`` or from where that tool would look."""
    looked = _candidates(app, source)
    for path in looked:
        layout = _layout_at(path)
        if layout is not None:
            return layout
    if source is not None:
        raise AdoptError(
            f"{source} is neither a migrations folder (with revision files, or env.py and "
            "versions/) nor an alembic.ini naming one.",
            path=str(source),
            hint="Pass the folder that holds the old tool's migrations with --from.",
        )
    raise AdoptError(
        "Found no migrations of Flask-Migrate, Flask-Alembic 3 or Alembic (looked for "
        f"{', '.join(str(p) for p in looked)}).",
        hint="Pass the folder that holds them with --from PATH.",
    )


def _layout_at(path: Path) -> Layout | None:
    if path.name.endswith(".ini") or path.is_file():
        return _ini_layout(path) if path.is_file() else None
    if not path.is_dir():
        return None
    env = path / "env.py"
    versions = path / "versions"
    if env.is_file() and versions.is_dir():
        inside = path / "alembic.ini"
        if inside.is_file() and "script_location" not in _ini_main(inside):
            kind = Kind.FLASK_MIGRATE  # Flask-Migrate sets the location itself
            return _with_lockstep(kind, path, versions, ini=inside, env=env)
        return _with_lockstep(Kind.ALEMBIC, path, versions, ini=None, env=env)
    if env.is_file():
        return None
    if not revision_cache.holds_revisions(path):
        return None  # an empty folder (this package's mkdir makes one): nothing to adopt
    template = path / "script.py.mako"
    ours = config.template_dir() / "script.py.mako"
    same = template.is_file() and template.read_bytes() == ours.read_bytes()
    kind = Kind.FLASK_ALEMBIC if same else Kind.FLASK_ALEMBIC_3
    return _with_lockstep(kind, path, path, ini=None, env=None)


def _ini_layout(ini: Path) -> Layout | None:
    """Plain Alembic: an ``alembic.ini`` whose ``script_location`` is a folder with env.py."""
    main = _ini_main(ini)
    location = main.get("script_location")
    if not location:
        return None
    folder = Path(location)
    if not folder.is_absolute():
        folder = ini.parent / folder  # Alembic runs from the ini's folder
    folder = folder.absolute()
    env = folder / "env.py"
    revisions = folder / "versions"
    extra = [p for p in _split_locations(main) if p]
    if extra:
        revisions = Path(extra[0])
        if not revisions.is_absolute():
            revisions = ini.parent / revisions
    if not folder.is_dir():
        raise AdoptError(
            f"{ini} names script_location {location!r}, which is not a folder.",
            path=str(ini),
            hint="Fix script_location, or pass the migrations folder with --from.",
        )
    return _with_lockstep(
        Kind.ALEMBIC,
        folder,
        revisions.absolute(),
        ini=ini,
        env=env if env.is_file() else None,
    )


def _with_lockstep(
    kind: Kind, location: Path, revisions: Path, *, ini: Path | None, env: Path | None
) -> Layout:
    """The layout, as a lockstep one when its files (or, once converted, its archive) say so."""
    from .lockstep import ARCHIVE_NAME
    from .lockstep import find_lockstep

    lockstep = find_lockstep([revisions])
    converted = (location / ARCHIVE_NAME).is_dir()
    if (lockstep or converted) and kind == Kind.FLASK_MIGRATE:
        kind = Kind.FLASK_MIGRATE_MULTIDB
    elif (lockstep or converted) and kind in {Kind.FLASK_ALEMBIC_3, Kind.FLASK_ALEMBIC}:
        kind = Kind.FLASK_ALEMBIC_3_MULTIDB
    elif lockstep:
        raise AdoptError(
            f"The revisions in {revisions} take an engine name (a history run on several "
            f"databases at once), which {kind.description} does not write.",
            path=str(revisions),
            hint="Pass the migrations folder of Flask-Migrate or Flask-Alembic 3 with --from.",
        )
    return Layout(
        kind=kind,
        script_location=location,
        revisions=revisions,
        ini=ini,
        env=env,
        lockstep_files=tuple(lockstep),
    )


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None


# -- reading the options ------------------------------------------------------------------


def _ini_parser(ini: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(defaults={"here": str(ini.parent.absolute())})
    try:
        parser.read(ini, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AdoptError(
            f"Cannot read {ini}: it is not UTF-8 text ({exc.reason} at byte {exc.start}).",
            path=str(ini),
            hint="Save it as UTF-8 (Alembic reads it so too), then run adopt again.",
        ) from None
    except configparser.Error as exc:
        raise AdoptError(
            f"Cannot read {ini}: {' '.join(str(exc).split())}",
            path=str(ini),
            hint="Fix the file's syntax (it is read as Alembic reads it, with configparser).",
        ) from None
    return parser


def _ini_main(ini: Path) -> dict[str, str]:
    """The ``[alembic]`` section, interpolated as Alembic does (``%(here)s``)."""
    parser = _ini_parser(ini)
    if not parser.has_section("alembic"):
        return {}
    result: dict[str, str] = {}
    for key in parser.options("alembic"):
        if key == "here":
            continue
        try:
            result[key] = parser.get("alembic", key)
        except configparser.Error:
            result[key] = parser.get("alembic", key, raw=True)
    return result


def _split_locations(main: Mapping[str, str]) -> list[str]:
    """``version_locations`` split the way its ``path_separator`` says (Alembic's rule;
    without one, spaces and commas)."""
    raw = main.get("version_locations", "")
    separator = main.get("path_separator") or main.get("version_path_separator") or "space"
    if separator == "newline":
        parts = raw.splitlines()
    elif separator == "space":
        parts = raw.replace(",", " ").split()
    else:
        parts = raw.split(_SEPARATORS.get(separator, separator))
    return [part.strip() for part in parts if part.strip()]


_SEPARATORS = {"os": os.pathsep, "colon": ":", "semicolon": ";"}


#: ``alembic.ini`` keys that become ``ALEMBIC`` options as they are.
_INI_CARRIED = (
    "file_template",
    "timezone",
    "truncate_slug_length",
    "output_encoding",
    "sourceless",
    "recursive_version_locations",
)
#: ``alembic.ini`` keys this package has no use for: the app gives them.
_INI_IGNORED = frozenset(
    {
        "script_location",
        "version_locations",
        "path_separator",
        "version_path_separator",
        "sqlalchemy.url",
        "prepend_sys_path",
        "revision_environment",
    }
)


def read_ini_options(ini: Path, base: Path) -> tuple[dict[str, str], list[str]]:
    """The ``ALEMBIC`` options an ``alembic.ini`` gives, and what it gives that is not carried."""
    main = _ini_main(ini)
    where = _shown(ini, base)
    options = {key: main[key] for key in _INI_CARRIED if key in main}
    notes = [
        f"{where}: [alembic] {key} is not carried over (no such option here)."
        for key in main
        if key not in _INI_CARRIED and key not in _INI_IGNORED
    ]
    if len(_split_locations(main)) > 1:
        notes.append(
            f"{where}: only the first of its version_locations is used for the default bind; "
            "move the others' revisions there or give them a bind of their own."
        )
    return options, notes


#: ``context.configure`` arguments that env.py fills from the app: never settings.
_PLUMBING = frozenset(
    {
        "connection",
        "target_metadata",
        "url",
        "literal_binds",
        "dialect_opts",
        "upgrade_token",
        "downgrade_token",
        "as_sql",
        "fn",
        "starting_rev",
        "destination_rev",
        "tag",
        "output_buffer",
    }
)
#: Options this package sets itself: carrying them would change how it runs.
_MANAGED = frozenset({"transaction_per_migration", "transactional_ddl"})
#: Options that belong to each bind, not to ``ALEMBIC_CONTEXT``.
_BIND_KEYS = ("version_table", "version_table_schema")


def read_env_options(
    env: Path, base: Path, *, spread_read: bool = False
) -> tuple[dict[str, tuple[Any, int]], list[str]]:
    """The literal keyword arguments of ``context.configure(...)`` in ``env``, with their
    line, and one note for each argument that is not a literal or disagrees between calls.

    :param spread_read: ``**options`` are read elsewhere (Flask-Migrate's ``configure_args``).
    """
    where = _shown(env, base)
    tree = _parse(env)
    if tree is None:
        return {}, [f"{where} could not be parsed as Python; its options are not read."]
    found: dict[str, tuple[Any, int]] = {}
    notes: list[str] = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "configure"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "context"
        ):
            continue
        for keyword in node.keywords:
            if keyword.arg is None and spread_read:
                continue
            if keyword.arg is None:
                source = ast.get_source_segment(env.read_text("utf-8"), keyword.value) or "..."
                notes.append(
                    f"{where}, line {keyword.lineno}: the options in **{source} are not "
                    "literals and are not read."
                )
                continue
            if keyword.arg in _PLUMBING:
                continue
            try:
                value = ast.literal_eval(keyword.value)
            except ValueError:
                notes.append(
                    f"{where}, line {keyword.lineno}: {keyword.arg} is not a literal and is "
                    "not carried over; set it in ALEMBIC_CONTEXT yourself."
                )
                continue
            earlier = found.get(keyword.arg)
            if earlier is not None and earlier[0] != value:
                notes.append(
                    f"{where}, line {keyword.lineno}: {keyword.arg} is {value!r} here but "
                    f"{earlier[0]!r} on line {earlier[1]}; the first is used."
                )
                continue
            found.setdefault(keyword.arg, (value, keyword.lineno))
    return found, notes


def _shown(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` when it is inside it, for messages."""
    try:
        return str(path.absolute().relative_to(base.absolute()))
    except ValueError:
        return str(path)


def _own_settings(app: Flask) -> dict[str, dict[str, Any]]:
    """A copy of the app's settings, without the keys filled in only for Flask-Alembic 3's
    code (``config.COMPAT_DEFAULTS``): they are not settings to write down."""
    current = {key: copy.deepcopy(app.config.get(key) or {}) for key in SETTINGS}
    for key, default in config.COMPAT_DEFAULTS.items():
        if current["ALEMBIC"].get(key) == default:
            del current["ALEMBIC"][key]
    return current


class _Settings:
    """The settings being worked out, and where each value came from."""

    def __init__(self, app: Flask) -> None:
        self.values: dict[str, dict[str, Any]] = _own_settings(app)
        self.read: list[Option] = []
        self.notes: list[str] = []

    def set(self, setting: str, key: str, value: Any, source: str) -> None:
        self.values[setting][key] = value
        self.read.append(Option(setting=f"{setting}[{key!r}]", value=value, source=source))

    def set_bind(self, bind: str, key: str, value: Any, source: str) -> None:
        entry = self.values["ALEMBIC_BINDS"].setdefault(bind, {})
        entry[key] = value
        self.read.append(
            Option(setting=f"ALEMBIC_BINDS[{bind!r}][{key!r}]", value=value, source=source)
        )

    def context_option(self, key: str, value: Any, source: str, binds: list[str]) -> None:
        if key in _BIND_KEYS:
            for bind in binds:
                self.set_bind(bind, key, value, source)
        elif key in _MANAGED:
            self.notes.append(
                f"{source}: {key}={value!r} is not carried over: Flask-Alembic runs each "
                "revision in a transaction of its own where the database allows it."
            )
        else:
            self.set("ALEMBIC_CONTEXT", key, value, source)


def _work_out(app: Flask, layout: Layout, binds: list[str]) -> _Settings:
    """The settings for ``layout``: the app's own, with what the old tool's files give."""
    settings = _Settings(app)
    root = Path(app.root_path)
    base = Path.cwd()
    if config.script_location(app).resolve() != layout.script_location.resolve():
        location = os.path.relpath(layout.script_location, root)
        settings.set("ALEMBIC", "script_location", location, "where the migrations are")
    if layout.revisions != layout.script_location:
        folder = os.path.relpath(layout.revisions, layout.script_location)
        settings.set_bind(DEFAULT_BIND, "version_location", folder, "where the revisions are")
    if layout.ini is not None:
        options, notes = read_ini_options(layout.ini, base)
        for key, value in options.items():
            settings.set("ALEMBIC", key, value, _shown(layout.ini, base))
        settings.notes += notes
    if layout.env is not None:
        # Flask-Migrate's env.py passes **configure_args: the app says what they are.
        migrate = layout.kind in {Kind.FLASK_MIGRATE, Kind.FLASK_MIGRATE_MULTIDB}
        found, notes = read_env_options(layout.env, base, spread_read=migrate)
        settings.notes += notes
        where = _shown(layout.env, base)
        for key, (value, line) in found.items():
            settings.context_option(key, value, f"{where}, line {line}", binds)
    if layout.kind in {Kind.FLASK_MIGRATE, Kind.FLASK_MIGRATE_MULTIDB}:
        _read_migrate(app, settings, binds)
    return settings


def _read_migrate(app: Flask, settings: _Settings, binds: list[str]) -> None:
    """Flask-Migrate's ``Migrate(...)`` options, when it is still registered on the app."""
    migrate = app.extensions.get("migrate")
    args = getattr(migrate, "configure_args", None)
    if not isinstance(args, Mapping):
        settings.notes.append(
            "Flask-Migrate is not registered on the app, so the options given to "
            "Migrate(...) (compare_type, render_as_batch, version_table...) cannot be read; "
            'keep Migrate(app, db, command="old-db") (another command name than this '
            "package's) while adopting, or set them in ALEMBIC_CONTEXT yourself."
        )
        return
    source = "Migrate(...) options (app.extensions['migrate'])"
    for key, value in args.items():
        if key == "process_revision_directives":
            continue  # its env.py's own hook, skipping empty autogenerated revisions
        if key in _PLUMBING:
            continue
        if not _is_literal(value):
            settings.notes.append(
                f"{source}: {key} is not a literal and is not carried over; set it in "
                "ALEMBIC_CONTEXT yourself."
            )
            continue
        settings.context_option(key, value, source, binds)


def _is_literal(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple | set | frozenset):
        return all(_is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(_is_literal(k) and _is_literal(v) for k, v in value.items())
    return False


# -- the databases ------------------------------------------------------------------------


@contextmanager
def _configured(app: Flask, settings: Mapping[str, Any]) -> Iterator[None]:
    """The app with ``settings`` in place for the block; its own put back afterwards."""
    missing = object()
    saved = {key: app.config.get(key, missing) for key in SETTINGS}
    try:
        for key in SETTINGS:
            app.config[key] = copy.deepcopy(settings[key])
        config.apply_defaults(app)
        yield
    finally:
        for key, value in saved.items():
            if value is missing:
                app.config.pop(key, None)
            else:
                app.config[key] = value


def _old_ids(folders: list[Path]) -> set[str]:
    """The revision ids of the files in ``folders``, read statically (nothing is imported)."""
    files = revision_cache.scan(folders, None).files()
    return {item.data.revision for item in files if item.data is not None}


def _read_rows(binds: list[Bind], identities: Identities, known: set[str]) -> list[BindRows]:
    result = []
    with HeadsReader.open(identities) as reader:
        for bind in binds:
            table = version_table_name(bind)
            try:
                rows = reader.heads(bind)
            except DatabaseError as exc:
                result.append(BindRows(bind=bind.name, version_table=table, error=exc))
                continue
            unknown = tuple(r for r in rows if r not in known)
            result.append(BindRows(bind=bind.name, version_table=table, rows=rows, unknown=unknown))
    return result


def _check_rows(rows: list[BindRows], layout: Layout) -> None:
    """Refuse to go on when a database cannot be read, or records a revision the files lack."""
    for row in rows:
        if row.error is not None:
            raise row.error
        if row.unknown:
            raise AdoptError(
                f"Bind {row.bind!r} records revision(s) {', '.join(row.unknown)} in "
                f"{row.version_table}, which no file in {layout.revisions} has.",
                bind=row.bind,
                revision=row.unknown[0],
                hint="Check the version table setting (version_table, version_table_schema) "
                "and that the revision files are all there, then run adopt again.",
            )


def adopt(
    app: Flask,
    *,
    engines: EnginesArg | None,
    metadatas: MetadatasArg | None,
    source: Path | None = None,
    plan: bool = False,
    lock_timeout: float | None = None,
) -> Adoption:
    """Find the old tool's files, work out the settings and check every bind's state;
    convert a lockstep history and stamp each bind with its own ids.

    A conversion stopped midway (a killed process) is finished, or undone, first. What
    is planned is checked again under the migration locks: when another process changed
    the files meanwhile (another ``adopt`` converted them), everything is planned again.

    :param source: the old migrations folder or ``alembic.ini``; found where the old tool
        would look when not given.
    :param plan: read and check everything, write nothing.
    """
    recovered: list[str] = []
    for _ in range(_ATTEMPTS):
        stopped = _stopped_conversion(app, source)
        if stopped is not None and plan:
            raise AdoptError(
                f"A conversion of the lockstep history in {stopped} was stopped midway "
                f"(its journal {stopped / _journal_name()} is there); --plan changes nothing, "
                "so it cannot finish it.",
                path=str(stopped / _journal_name()),
                hint=(
                    "Run ",
                    Command("adopt"),
                    " without --plan: it finishes (or undoes) that conversion first, then goes on.",
                ),
            )
        if stopped is not None:
            timeout = config.lock_timeout(app, lock_timeout)
            outcome = _recover(app, engines, metadatas, source, stopped, timeout)
            if outcome is not None:
                recovered.append(_RECOVERED[outcome].format(folder=stopped))
        try:
            adoption = _adopt(
                app,
                engines=engines,
                metadatas=metadatas,
                source=source,
                plan=plan,
                lock_timeout=lock_timeout,
            )
        except _Changed:
            continue
        return dataclasses.replace(adoption, notes=(*recovered, *adoption.notes))
    raise AdoptError(
        "The migrations folder kept changing while adopting (another process is "
        "converting or moving it); nothing was changed.",
        hint="Run adopt again once the other process has finished.",
    )


#: How many times ``adopt`` plans again when the files change under it.
_ATTEMPTS = 3
#: What is said of a conversion stopped midway, once finished or undone.
_RECOVERED = {
    "finished": "The conversion of {folder} was stopped midway (a killed run); it was "
    "finished from its journal.",
    "undone": "The conversion of {folder} was stopped midway (a killed run) before every "
    "file was written; it was undone from its journal, and done again here.",
}


class _Changed(Exception):
    """The files changed between planning and taking the locks: plan again."""


def _journal_name() -> str:
    from .lockstep import JOURNAL_NAME

    return JOURNAL_NAME


def _stopped_conversion(app: Flask, source: Path | None) -> Path | None:
    """The migrations folder holding the journal of a conversion that was stopped, if any."""
    # Only Flask-Migrate's and Flask-Alembic 3's folders are converted: never an
    # alembic.ini's script location.
    folders = [*_candidates(app, source), config.script_location(app)]
    for folder in folders:
        if os.path.lexists(folder / _journal_name()):
            return folder.absolute()
    return None


def _recover(
    app: Flask,
    engines: EnginesArg | None,
    metadatas: MetadatasArg | None,
    source: Path | None,
    folder: Path,
    timeout: float | None,
) -> str | None:
    """Finish (or undo) the stopped conversion in ``folder``, under every bind's migration
    lock: the process that wrote the journal holds them while it runs, so it is gone
    once they are taken. Returns what :func:`lockstep.recover` did."""
    from .lockstep import recover

    try:
        layout: Layout | None = find_layout(app, source)
    except AdoptError:
        layout = None  # its revisions are moved away: the app's own settings name the binds
    names = _bind_names(app, engines, metadatas)
    values = _work_out(app, layout, names).values if layout is not None else _own_settings(app)
    with _configured(app, values):
        binds = list(build_registry(app, engines=engines, metadatas=metadatas).all)
        with locking.lock_binds(binds, timeout, Identities()):
            return recover(folder)


def _snapshot(app: Flask, source: Path | None) -> tuple[Layout, bytes | None, bool]:
    """What a plan was made from: the layout, its id map and whether a journal is there."""
    layout = find_layout(app, source)
    try:
        id_map: bytes | None = _id_map_path(layout).read_bytes()
    except OSError:
        id_map = None
    journal = os.path.lexists(layout.script_location / _journal_name())
    return layout, id_map, journal


def _adopt(
    app: Flask,
    *,
    engines: EnginesArg | None,
    metadatas: MetadatasArg | None,
    source: Path | None,
    plan: bool,
    lock_timeout: float | None,
) -> Adoption:
    planned = _snapshot(app, source)
    layout = planned[0]
    several = layout.kind.lockstep or _id_map_path(layout).is_file()
    names = _bind_names(app, engines, metadatas) if several else [DEFAULT_BIND]
    settings = _work_out(app, layout, names)
    with _configured(app, settings.values):
        registry = build_registry(app, engines=engines, metadatas=metadatas)
        identities = Identities()
        if several:
            binds = [b for b in registry.all if b.name in names]
        else:
            binds = [b for b in registry.all if b.name == DEFAULT_BIND]
            if not binds:
                raise AdoptError(
                    f"The app has no 'default' bind to carry the {layout.kind.description} "
                    f"history of {layout.revisions}; its binds: {registry.describe_names()}.",
                    hint="Configure the database the old tool migrated as the app's default "
                    "database (SQLALCHEMY_DATABASE_URI), then run adopt again.",
                )
        files: tuple[FileChange, ...] = ()
        stamps: tuple[Stamp, ...] = ()
        if layout.lockstep_files:
            before, files, stamps, conversion = _plan_lockstep(layout, binds, identities)
        elif several:
            before, stamps = _plan_restamp(layout, binds, identities)
            conversion = None
        else:
            # Every version location the app names: Flask-Alembic 3 kept a branch's
            # revisions in a folder of their own, ``("branch", "folder")``.
            folders = [layout.revisions, *binds[0].version_locations]
            before = _read_rows(binds, identities, _old_ids(folders))
            _check_rows(before, layout)
            conversion = None
        after = None
        if not plan:
            if conversion is not None or any(not s.done for s in stamps):
                timeout = config.lock_timeout(app, lock_timeout)
                stamps = _write(
                    binds,
                    identities,
                    conversion,
                    stamps,
                    timeout,
                    lambda: _snapshot(app, source) == planned,
                )
            loader = Loader(app, registry)
            after = tuple(read_status(loader, identities, list(registry.all)))
    configured = _own_settings(app) == settings.values
    return Adoption(
        layout=layout,
        settings={key: settings.values[key] for key in SETTINGS},
        configured=configured,
        read=tuple(settings.read),
        notes=tuple(settings.notes),
        before=tuple(before),
        after=after,
        planned=plan,
        files=files,
        stamps=stamps,
    )


def _bind_names(
    app: Flask, engines: EnginesArg | None, metadatas: MetadatasArg | None
) -> list[str]:
    """Every bind of the app: each one had its place in the lockstep history."""
    return [b.name for b in build_registry(app, engines=engines, metadatas=metadatas).all]


def _id_map_path(layout: Layout) -> Path:
    from .lockstep import ARCHIVE_NAME
    from .lockstep import ID_MAP_NAME

    return layout.script_location / ARCHIVE_NAME / ID_MAP_NAME


def _suffix(layout: Layout, bind: str) -> str:
    """How the old files name a bind's functions: Flask-Migrate's default bind is ``""``."""
    migrate = layout.kind == Kind.FLASK_MIGRATE_MULTIDB
    return "" if migrate and bind == DEFAULT_BIND else bind


def _plan_lockstep(
    layout: Layout, binds: list[Bind], identities: Identities
) -> tuple[list[BindRows], tuple[FileChange, ...], tuple[Stamp, ...], Conversion]:
    """Every file to write and every version row to map, from each bind's own rows."""
    from .lockstep import BindTarget
    from .lockstep import plan_conversion

    targets = [
        BindTarget(
            name=b.name,
            suffix=_suffix(layout, b.name),
            folder=b.version_location,
            label=b.branch_label,
        )
        for b in binds
    ]
    before = _read_rows(binds, identities, _old_ids([layout.revisions]))
    _check_rows(before, layout)
    conversion = plan_conversion([layout.revisions], targets, DEFAULT_BIND, layout.script_location)
    # In the order they happen: the old files move away first, so that a new file of the
    # default bind (same id, often the same name) is not read as one about to be moved.
    files = [
        FileChange(action="archive", path=p, old=str(_archived(conversion, p)))
        for p in conversion.old_files
    ]
    files += [
        FileChange(action="write", path=f.path, bind=f.bind, revision=f.new_id, old=f.old_id)
        for f in conversion.files
    ]
    files.append(FileChange(action="replace", path=conversion.template))
    stamps = tuple(
        _stamp_of(b, row.rows, conversion.new_ids(b.name, row.rows))
        for b, row in zip(binds, before, strict=True)
    )
    return before, tuple(files), stamps, conversion


def _archived(conversion: Conversion, path: Path) -> Path:
    """Where the conversion moves an old file: its folder kept, inside the archive."""
    location = conversion.template.parent.resolve()
    try:
        folder = path.parent.resolve().relative_to(location)
    except ValueError:
        folder = Path(path.parent.name)
    return conversion.archive / folder / path.name


def _plan_restamp(
    layout: Layout, binds: list[Bind], identities: Identities
) -> tuple[list[BindRows], tuple[Stamp, ...]]:
    """After a conversion: the binds whose rows still hold old ids, from the id map."""
    path = _id_map_path(layout)
    try:
        data = json.loads(path.read_text("utf-8"))
        id_map: dict[str, dict[str, str | None]] = data["revisions"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AdoptError(
            f"Cannot read the id map {path} of the converted history: {exc}.",
            path=str(path),
            hint="Restore the file from the backup taken before adopting.",
        ) from None
    new_ids = {b.name: _old_ids(list(b.version_locations)) for b in binds}
    before = _read_rows(binds, identities, set().union(*new_ids.values(), id_map))
    _check_rows(before, layout)
    stamps = []
    for b, row in zip(binds, before, strict=True):
        if all(r in new_ids[b.name] for r in row.rows):
            mapped = row.rows
        else:
            mapped = tuple(
                dict.fromkeys(
                    new for r in row.rows if (new := id_map.get(r, {}).get(b.name)) is not None
                )
            )
        stamps.append(_stamp_of(b, row.rows, mapped))
    return before, tuple(stamps)


def _stamp_of(bind: Bind, old: tuple[str, ...], new: tuple[str, ...]) -> Stamp:
    return Stamp(
        bind=bind.name,
        version_table=version_table_name(bind),
        old=old,
        new=new,
        done=set(old) == set(new),
    )


def _write(
    binds: list[Bind],
    identities: Identities,
    conversion: Conversion | None,
    stamps: tuple[Stamp, ...],
    timeout: float | None,
    unchanged: Callable[[], bool],
) -> tuple[Stamp, ...]:
    """Under every bind's migration lock: check the files (``unchanged``) and the rows
    are still those planned from, write the files, then each bind's version rows (no
    DDL, no data). Raises :class:`_Changed` when the files changed: plan again."""
    from .lockstep import apply_conversion

    by_name = {b.name: b for b in binds}
    with locking.lock_binds(binds, timeout, identities) as held:
        if not unchanged():
            raise _Changed
        with HeadsReader.open(identities) as reader:
            for stamp in stamps:
                now = reader.heads(by_name[stamp.bind])
                if set(now) != set(stamp.old):
                    raise AdoptError(
                        f"Bind {stamp.bind!r} moved from {', '.join(stamp.old) or 'base'} to "
                        f"{', '.join(now) or 'base'} while adopting (another process "
                        "migrated it); nothing was changed.",
                        bind=stamp.bind,
                        hint="Run adopt again once it has finished.",
                    )
        if conversion is not None:
            apply_conversion(conversion)
        finished: list[Stamp] = []
        for stamp in stamps:
            if stamp.done:
                finished.append(stamp)
                continue
            try:
                held.check(stamp.bind)
                _write_rows(by_name[stamp.bind], stamp.new)
            except (FlaskAlembicError, sa.exc.SQLAlchemyError) as exc:
                raise _midway(conversion, finished, stamp, exc) from exc
            finished.append(dataclasses.replace(stamp, done=True))
    return tuple(finished)


def _write_rows(bind: Bind, rows: tuple[str, ...]) -> None:
    """Replace the bind's version rows with ``rows``, in one transaction."""
    table = sa.table(bind.version_table, sa.column("version_num"), schema=bind.version_table_schema)
    with bind.connect() as connection:
        connection.execute(sa.delete(table))
        if rows:
            connection.execute(sa.insert(table), [{"version_num": r} for r in rows])
        connection.commit()


def _midway(
    conversion: Conversion | None, finished: list[Stamp], failed: Stamp, exc: BaseException
) -> AdoptError:
    """What was done when writing a bind's rows failed, and how to finish."""
    done = []
    if conversion is not None:
        done.append(
            f"converted the history ({len(conversion.files)} files written, the old ones "
            f"kept in {conversion.archive})"
        )
    changed = [s.bind for s in finished if set(s.old) != set(s.new)]
    if changed:
        done.append(f"stamped bind(s) {', '.join(repr(b) for b in changed)}")
    detail = exc.render() if isinstance(exc, FlaskAlembicError) else describe_exception(exc, ())
    return AdoptError(
        f"Adopting stopped midway: {'; '.join(done) or 'nothing was written'}; writing "
        f"the version rows of bind {failed.bind!r} ({failed.version_table}) failed: {detail}",
        bind=failed.bind,
        hint="Fix the cause and run adopt again: it finishes the job.",
    )


def next_steps(adoption: Adoption) -> tuple[str | Command, ...]:
    """What to do once adopted: settings in place, then ``status``."""
    if adoption.configured:
        return ("Run ", Command("status"), ": it must say 'up to date' before any upgrade.")
    return (
        "Put these settings in the app's configuration, then run ",
        Command("status"),
        ": it must say 'up to date' before any upgrade.",
    )
