"""Reading the app's settings: ``ALEMBIC``, ``ALEMBIC_CONTEXT``, ``ALEMBIC_BINDS`` and the rest.

Defaults are filled in by ``init_app``; each setting is checked where it is read, so a bad
value is an error naming the key, raised when it is first needed.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from typing import TYPE_CHECKING

from flask import Flask

from .errors import Command
from .errors import ConfigurationError
from .errors import ScriptDirectoryError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "BIND_OPTIONS",
    "COMPAT_DEFAULTS",
    "REVISION_CACHE_CHECKS",
    "TIMEOUT_KEYS",
    "alembic_config",
    "alembic_options",
    "apply_defaults",
    "bind_settings",
    "bind_timeouts",
    "branch_locations",
    "check_script_location",
    "context_defaults",
    "extra_locations",
    "foreign_script_location",
    "lint_mode",
    "lock_timeout",
    "parallel",
    "revision_cache_check",
    "revision_cache_enabled",
    "script_location",
    "static_graph_allowed",
    "template_dir",
    "timeout_problem",
]

#: The keys an ``ALEMBIC_BINDS`` entry may have.
BIND_OPTIONS = frozenset(
    {
        "version_location",
        "version_table",
        "version_table_schema",
        "context",
        "include",
        "sqlite_foreign_keys",
        "timeouts",
    }
)
_TRUE = (True, "true", "True", "1")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")

#: Where the files a new script directory starts from live: inside the installed
#: package, or at the top of a source checkout.
_TEMPLATE_CANDIDATES = (
    Path(__file__).parent / "migrations_template",
    Path(__file__).parent.parent / "migrations_template",
)


#: ``ALEMBIC`` keys that Flask-Alembic 3 filled in and code may read: kept for that code,
#: but the version locations are joined here, not by Alembic.
COMPAT_DEFAULTS: dict[str, Any] = {"path_separator": "os", "version_locations": []}


def apply_defaults(app: Flask) -> None:
    """Fill in the settings' defaults (those Flask-Alembic 3 filled in too).

    Never raises: a setting of the wrong type is refused when it is first read, so an app
    factory can register the extension with a bad config and fail only on use.
    """
    config = app.config.setdefault("ALEMBIC", {})
    if isinstance(config, dict):
        config.setdefault("script_location", "migrations")
        for key, value in COMPAT_DEFAULTS.items():
            config.setdefault(key, copy.copy(value))
    context = app.config.setdefault("ALEMBIC_CONTEXT", {})
    if isinstance(context, dict):
        context.setdefault("compare_server_default", True)
    app.config.setdefault("ALEMBIC_BINDS", {})


def alembic_options(app: Flask) -> dict[str, Any]:
    """``ALEMBIC``, refused unless it is a dict."""
    options = app.config.get("ALEMBIC", {})
    if not isinstance(options, dict):
        raise ConfigurationError(
            f"'ALEMBIC' must be a dict of Alembic options, got {options!r}.",
            hint='For example ALEMBIC = {"script_location": "migrations"}.',
        )
    return options


def _resource_or_path(app: Flask, location: str) -> Path:
    """A folder given as a path (relative to the app's root) or as ``package:folder``."""
    if ":" in location and not os.path.isabs(location) and not _WINDOWS_DRIVE.match(location):
        from alembic.util import coerce_resource_to_filename

        return Path(coerce_resource_to_filename(location))
    path = Path(location)
    return path if path.is_absolute() else Path(app.root_path) / path


def script_location(app: Flask) -> Path:
    """The migrations folder, ``ALEMBIC['script_location']``, as an absolute path."""
    location = alembic_options(app).get("script_location", "migrations")
    _check_folder_setting("script_location", location, '"migrations"')
    return _resource_or_path(app, os.fspath(location))


def foreign_script_location(app: Flask) -> Path | None:
    """Another tool's migrations folder, when the script location does not exist.

    Flask-Migrate and Alembic look in the current directory, not in the app's root path:
    the folder ``Migrate(app, db, directory=...)`` names while it is still registered,
    ``migrations/``, or the ``script_location`` of an ``alembic.ini`` there. Such a folder
    counts when it holds an ``env.py``.
    """
    location = script_location(app)
    if location.exists() and not _untouched(location):
        return None
    try:
        cwd = Path.cwd()
        candidates = [cwd / "migrations"]
        registered = getattr(app.extensions.get("migrate"), "directory", None)
        if isinstance(registered, str | os.PathLike):
            candidates.insert(0, cwd / registered)
        ini = cwd / "alembic.ini"
        if ini.is_file():
            found = _ini_script_location(ini)
            if found is not None:
                candidates.insert(0, found)
        for candidate in candidates:
            if (candidate / "env.py").is_file() and candidate.resolve() != location.resolve():
                return candidate.resolve()
    except OSError:  # no current directory (it was deleted), or one that cannot be read
        pass
    return None


def _untouched(location: Path) -> bool:
    """Whether ``location`` holds only what a new migrations folder starts with (the
    template, its README, the revision cache): created here before another tool's folder
    was known, say by ``init_app`` running before ``Migrate(app, db, directory=...)``."""
    try:
        with os.scandir(location) as listing:
            # Stops at the first other name: a folder with a history answers at once.
            return all(entry.name in _NEW_FOLDER for entry in listing)
    except OSError:
        return False


#: What a new migrations folder starts with (see :func:`_untouched`).
_NEW_FOLDER = frozenset({"script.py.mako", "README", "__pycache__"})


def _ini_script_location(ini: Path) -> Path | None:
    """The folder an ``alembic.ini``'s ``[alembic] script_location`` names, as Alembic
    reads it (``%(here)s`` is the file's folder; a relative path is from the current one)."""
    import configparser

    parser = configparser.ConfigParser(defaults={"here": str(ini.parent.absolute())})
    try:
        parser.read(ini, encoding="utf-8")
        value = parser.get("alembic", "script_location", fallback=None)
    except (configparser.Error, UnicodeDecodeError):
        return None
    if not value or (":" in value and not os.path.isabs(value)):
        return None  # absent, or a package resource: not a folder another tool made here
    return Path(value).absolute()


def check_script_location(app: Flask) -> None:
    """Refuse to go on when the script location does not exist but another tool's
    migrations folder does (see :func:`foreign_script_location`): a new, empty folder would
    hide its revisions."""
    found = foreign_script_location(app)
    if found is not None:
        location = script_location(app)
        state = "holds no revision yet" if location.exists() else "does not exist"
        raise ScriptDirectoryError(
            f"The migrations folder {location} {state}, but {found} "
            "(another tool's, with an env.py) does.",
            path=str(found),
            hint=(
                f'Set ALEMBIC = {{"script_location": "{_from_root(app, found)}"}}, or run ',
                Command("adopt"),
                ".",
            ),
        )


def _from_root(app: Flask, folder: Path) -> str:
    """``folder`` as ``script_location`` takes it: relative to the app's root path."""
    try:
        return Path(os.path.relpath(folder, Path(app.root_path).resolve())).as_posix()
    except ValueError:  # another drive, on Windows
        return folder.as_posix()


def extra_locations(app: Flask) -> list[Path]:
    """The default bind's folders besides the script location: ``ALEMBIC['version_locations']``.

    An item may be a folder, or a ``(branch, folder)`` pair as Flask-Alembic 3 took them:
    the folder is a version location either way (see :func:`branch_locations`).
    """
    return [_resource_or_path(app, os.fspath(folder)) for _, folder in _version_locations(app)]


def branch_locations(app: Flask) -> dict[str, Path]:
    """The folder of each branch named by a ``(branch, folder)`` pair in
    ``ALEMBIC['version_locations']``: where ``revision --branch NAME`` writes."""
    return {
        branch: _resource_or_path(app, os.fspath(folder))
        for branch, folder in _version_locations(app)
        if branch is not None
    }


def _version_locations(app: Flask) -> list[tuple[str | None, str | os.PathLike[str]]]:
    """``ALEMBIC['version_locations']`` as ``(branch or None, folder)`` pairs, checked."""
    raw = alembic_options(app).get("version_locations") or []
    if isinstance(raw, str | os.PathLike):
        raw = [raw]
    example = '["more_migrations"]'
    result: list[tuple[str | None, str | os.PathLike[str]]] = []
    for item in raw if isinstance(raw, list | tuple) else [raw]:
        if isinstance(item, tuple | list) and not isinstance(item, str):
            if len(item) != 2 or not isinstance(item[0], str) or not item[0]:
                raise ConfigurationError(
                    f"'ALEMBIC['version_locations']' holds {item!r}; a pair must be "
                    "(branch name, folder).",
                    hint='For example ALEMBIC = {"version_locations": [("audit", "audit")]}.',
                )
            _check_folder_setting("version_locations", item[1], example)
            result.append((item[0], item[1]))
            continue
        _check_folder_setting("version_locations", item, example)
        result.append((None, item))
    return result


def _check_folder_setting(key: str, value: object, example: str) -> None:
    """Refuse an ``ALEMBIC`` folder that is not a path: ``os.fspath`` would fail unexplained."""
    if not isinstance(value, str | os.PathLike):
        raise ConfigurationError(
            f"'ALEMBIC['{key}']' must be a folder (a string or a path), got {value!r}.",
            hint=f'For example ALEMBIC = {{"{key}": {example}}}.',
        )


def revision_cache_enabled(app: Flask) -> bool:
    """Whether revision files may be read from the cache (``ALEMBIC_REVISION_CACHE``)."""
    value = app.config.get("ALEMBIC_REVISION_CACHE", True)
    if not isinstance(value, bool):
        # A string such as "false" would be silently true.
        raise ConfigurationError(
            f"'ALEMBIC_REVISION_CACHE' must be True or False, got {value!r}.",
            hint="False loads every revision file the plain Alembic way; True (the default) "
            "reads them from the cache.",
        )
    return value


#: The values of ``ALEMBIC_REVISION_CACHE_CHECK``; the first is the default.
REVISION_CACHE_CHECKS = ("heads", "files", "folders")


def revision_cache_check(app: Flask) -> str:
    """How the revision cache checks the revision files (``ALEMBIC_REVISION_CACHE_CHECK``).

    ``"heads"`` (the default): the no-op check trusts a folder whose own signature and
    whose head revisions' files are unchanged; every other answer checks every file.
    ``"files"``: every command checks every file. ``"folders"``: every command trusts
    such a folder.
    """
    value = app.config.get("ALEMBIC_REVISION_CACHE_CHECK", REVISION_CACHE_CHECKS[0])
    if value not in REVISION_CACHE_CHECKS:
        raise ConfigurationError(
            f"'ALEMBIC_REVISION_CACHE_CHECK' must be 'heads', 'files' or 'folders', got {value!r}.",
            hint="'heads' (the default) trusts unchanged folders only to answer that every "
            "bind is up to date; 'files' checks every revision file on every command; "
            "'folders' trusts unchanged folders on every command.",
        )
    return str(value)


def static_graph_allowed(app: Flask) -> bool:
    """Whether the revision cache alone may answer: not for ``.pyc``-only or nested folders."""
    options = alembic_options(app)
    return (
        revision_cache_enabled(app)
        and options.get("sourceless") not in _TRUE
        and options.get("recursive_version_locations") not in _TRUE
    )


def bind_settings(app: Flask, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each bind's ``ALEMBIC_BINDS`` entry, checked against the binds that exist."""
    names = list(names)
    raw = app.config.get("ALEMBIC_BINDS", {})
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            f"'ALEMBIC_BINDS' must be a dict of bind name -> options, got {raw!r}.",
            hint='For example ALEMBIC_BINDS = {"stats": {"version_table": "stats_version"}}.',
        )
    for name in raw:
        if name not in names:
            raise ConfigurationError(
                f"'ALEMBIC_BINDS[{name!r}]' configures a bind that does not exist.",
                bind=str(name),
                hint=f"Known binds: {', '.join(repr(n) for n in names) or '(none)'}.",
            )
    result: dict[str, dict[str, Any]] = {}
    for name in names:
        entry = raw.get(name, {})
        if not isinstance(entry, Mapping):
            raise ConfigurationError(
                f"'ALEMBIC_BINDS[{name!r}]' must be a dict of options, got {entry!r}.",
                bind=name,
                hint=f"For example ALEMBIC_BINDS = {{{name!r}: {{'include': True}}}}.",
            )
        options = dict(entry)
        unknown = set(options) - BIND_OPTIONS
        if unknown:
            raise ConfigurationError(
                f"'ALEMBIC_BINDS[{name!r}]' has unknown option(s) {', '.join(sorted(unknown))}.",
                bind=name,
                hint=f"Valid options: {', '.join(sorted(BIND_OPTIONS))}.",
            )
        _check_bind_types(name, options)
        include = options.get("include")
        if include is not None and not isinstance(include, bool):
            raise ConfigurationError(
                f"'ALEMBIC_BINDS[{name!r}]['include']' must be True or False, got {include!r}.",
                bind=name,
                hint="True migrates the bind even without models; False never migrates it.",
            )
        result[name] = options
    return result


#: The per-bind options that are not True or False: the types they take (``None`` leaves
#: the default), what they are, and an example.
_BIND_OPTION_TYPES: dict[str, tuple[tuple[type, ...], str, str]] = {
    "version_table": ((str, type(None)), "a table name (a string)", "'stats_version'"),
    "version_table_schema": ((str, type(None)), "a schema name (a string)", "'stats'"),
    "version_location": ((str, os.PathLike), "a folder (a string or a path)", "'stats'"),
    "context": ((Mapping, type(None)), "a dict of EnvironmentContext options", "{}"),
    "timeouts": ((Mapping, type(None)), "a dict of timeouts in seconds", "{'lock_timeout': 5}"),
}


def _check_bind_types(name: str, options: Mapping[str, Any]) -> None:
    """Refuse an ``ALEMBIC_BINDS`` option of the wrong type, naming it and the type it takes."""
    for option, (types, expected, example) in _BIND_OPTION_TYPES.items():
        value = options.get(option)
        if option in options and not isinstance(value, types):
            raise ConfigurationError(
                f"'ALEMBIC_BINDS[{name!r}][{option!r}]' must be {expected}, got {value!r}.",
                bind=name,
                hint=f"For example ALEMBIC_BINDS = {{{name!r}: {{{option!r}: {example}}}}}.",
            )


#: The server-side timeouts a bind's migration steps may run with, by kind of server, and
#: the largest number of seconds each takes (PostgreSQL's limit is 2**31 - 1 milliseconds).
TIMEOUT_KEYS: dict[str, dict[str, float]] = {
    "postgresql": {"lock_timeout": 2147483.647, "statement_timeout": 2147483.647},
    "mysql": {"lock_wait_timeout": 31536000},
}
_SERVERS = {"postgresql": "PostgreSQL", "mysql": "MariaDB/MySQL", "sqlite": "SQLite"}


def timeout_problem(key: object, value: object, backend: str) -> tuple[str, str] | None:
    """What is wrong with the timeout ``key: value`` on a ``backend`` database, and the fix;
    ``None`` when nothing is.

    A value is a number of seconds greater than 0, or ``None`` (the server's own setting).
    """
    keys = TIMEOUT_KEYS.get(backend)
    server = _SERVERS.get(backend, backend)
    if keys is None:
        return (
            f"a {server} database has no server-side timeouts Flask-Alembic can set",
            "Remove them; timeouts are set on PostgreSQL (lock_timeout, statement_timeout), "
            "MariaDB and MySQL (lock_wait_timeout).",
        )
    use = f"Use {' or '.join(sorted(keys))} on {server}."
    if key not in keys:
        other = next((n for n, known in TIMEOUT_KEYS.items() if key in known), None)
        what = f"is for {_SERVERS[other]}" if other else "is not a timeout Flask-Alembic sets"
        return f"{key!r} {what}, and this is a {server} database", use
    limit = keys[key]
    if value is not None and (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= limit  # also false for nan
    ):
        return (
            f"{key!r} must be a number of seconds greater than 0 and at most {limit:.15g}, "
            f"or None for the server's own setting; got {value!r}",
            f"For example {{{key!r}: 5}}.",
        )
    return None


def bind_timeouts(
    name: str, raw: Mapping[str, Any] | None, backend: str
) -> dict[str, float | None]:
    """``ALEMBIC_BINDS[name]['timeouts']`` for a bind on a ``backend`` server, checked."""
    result: dict[str, float | None] = {}
    for key, value in (raw or {}).items():
        problem = timeout_problem(key, value, backend)
        if problem is not None:
            message, fix = problem
            raise ConfigurationError(
                f"'ALEMBIC_BINDS[{name!r}]['timeouts']': {message}.",
                bind=name,
                hint=fix,
            )
        result[key] = None if value is None else float(value)
    return result


def context_defaults(app: Flask) -> dict[str, Any]:
    """``ALEMBIC_CONTEXT``: the ``EnvironmentContext.configure`` options of every bind."""
    context = app.config.get("ALEMBIC_CONTEXT") or {}
    if not isinstance(context, dict):
        raise ConfigurationError(
            f"'ALEMBIC_CONTEXT' must be a dict of options for EnvironmentContext.configure, "
            f"got {context!r}.",
            hint='For example ALEMBIC_CONTEXT = {"compare_type": True}.',
        )
    return dict(context)


def parallel(app: Flask, value: int | None) -> int:
    """How many independent binds may migrate at once (``ALEMBIC_PARALLEL``, default 4)."""
    where = "parallel"
    if value is None:
        value = app.config.get("ALEMBIC_PARALLEL", 4)
        where = "'ALEMBIC_PARALLEL'"
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"{where} must be a whole number of at least 1, got {value!r}.",
            hint="Use 1 to migrate binds one after another.",
        )
    return value


def lock_timeout(app: Flask, value: float | None) -> float | None:
    """Seconds to wait for a lock: ``value``, else ``ALEMBIC_LOCK_TIMEOUT``; ``None``: default.

    ``inf`` waits without limit; ``nan`` (which would wait forever too, by accident) and
    negative numbers are refused.
    """
    where = "lock_timeout"
    if value is None:
        value = app.config.get("ALEMBIC_LOCK_TIMEOUT")
        where = "'ALEMBIC_LOCK_TIMEOUT'"
        if value is None:
            return None
    try:
        seconds = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        seconds = math.nan
    if not seconds >= 0:  # also false for nan
        raise ConfigurationError(
            f"{where} must be a number of seconds, 0 or more (inf waits without limit), "
            f"got {value!r}.",
            hint="For example ALEMBIC_LOCK_TIMEOUT = 120.",
        )
    return seconds


#: The values ``ALEMBIC_LINT`` takes: what ``revision`` and ``upgrade`` do with the linter.
LINT_MODES = ("warn", "refuse", "off")


def lint_mode(app: Flask) -> str:
    """``ALEMBIC_LINT``: ``"warn"`` (the default) shows findings, ``"refuse"`` also stops an
    upgrade with an unaccepted error finding, ``"off"`` lints only on ``lint``'s demand."""
    value = app.config.get("ALEMBIC_LINT", "warn")
    if value not in LINT_MODES or not isinstance(value, str):
        raise ConfigurationError(
            f'\'ALEMBIC_LINT\' must be "warn", "refuse" or "off", got {value!r}.',
            hint='"warn" (the default) shows what the linter finds; "refuse" also stops an '
            'upgrade before it runs a revision with an error finding; "off" lints only when '
            "asked.",
        )
    return value


def alembic_config(app: Flask, locations: Iterable[Path]) -> Config:
    """An Alembic ``Config`` from ``ALEMBIC``, listing ``locations`` as version locations."""
    import argparse

    from alembic.config import Config

    # quiet: the Python API must not print Alembic's "Generating ... done". x: no -x
    # options, as Alembic's command line gives them (context.get_x_argument() reads it).
    config = Config(cmd_opts=argparse.Namespace(quiet=True, x=[]))
    options = dict(alembic_options(app))
    options.pop("version_locations", None)
    for key, value in options.items():
        if isinstance(value, Mapping):
            for sub_key, sub_value in value.items():
                config.set_section_option(key, str(sub_key), _config_str(sub_value))
        else:
            config.set_main_option(key, _config_str(value))
    config.set_main_option("script_location", _config_str(script_location(app)))
    config.set_main_option("path_separator", "newline")
    config.set_main_option("version_locations", _config_str("\n".join(str(p) for p in locations)))
    return config


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


def template_dir() -> Path:
    """The folder holding the files a new script directory starts from."""
    for candidate in _TEMPLATE_CANDIDATES:
        if (candidate / "script.py.mako").is_file():
            return candidate
    raise ScriptDirectoryError(
        "Flask-Alembic's migrations_template folder is missing from the installation.",
        hint="Reinstall Flask-Alembic.",
    )
