"""The pytest plugin: migration tests per bind, and fixtures for writing one's own.

Registered through the ``pytest11`` entry point, so pytest loads it wherever Flask-Alembic
is installed; it does nothing until the project names its app, with the ini option
``flask_alembic_app = "package.module:create_app"`` or by overriding the
``flask_alembic_app`` fixture. Until then none of its work is imported (the harness, the
test databases); loading it costs the package's own import, as any use of Flask-Alembic
does.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from flask import Flask

    from .testing import Migrations

__all__ = [
    "flask_alembic",
    "flask_alembic_app",
    "flask_alembic_migrations",
    "flask_alembic_models",
]


@dataclass
class _Session:
    """What the plugin learned at collection: the app (loaded once) and its binds."""

    app: Flask | None = None
    #: The ini's ``flask_alembic_app``, when the app came from there.
    import_path: str | None = None
    binds: tuple[str, ...] = ()
    hosted: bool = False


_SESSION = pytest.StashKey[_Session]()
#: The generated tests this session runs (after deselection).
_ITEMS = pytest.StashKey[list[pytest.Item]]()


def _session(config: pytest.Config) -> _Session:
    if _SESSION not in config.stash:
        config.stash[_SESSION] = _Session()
    return config.stash[_SESSION]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "flask_alembic_app",
        "Flask-Alembic: the app whose migrations to test, as 'flask --app' takes it "
        "(module:app or module:create_app).",
        default="",
    )
    parser.addini(
        "flask_alembic_servers",
        "Flask-Alembic: 'BIND = ADMIN_URL' lines ('*' for every bind): a database is "
        "created on that server for the session and dropped at the end. Other binds get "
        "a temporary SQLite file.",
        type="linelist",
        default=[],
    )
    parser.addini(
        "flask_alembic_minimum_revisions",
        "Flask-Alembic: revision ids; the downgrades of the revisions below each are not tested.",
        type="linelist",
        default=[],
    )
    parser.addini(
        "flask_alembic_models",
        "Flask-Alembic: packages whose every module is imported to find models the app "
        "never registers (default: the app's top-level package).",
        type="linelist",
        default=[],
    )
    parser.addini(
        "flask_alembic_tests",
        "Flask-Alembic: the generated tests to collect (default: all of them), e.g. "
        "test_upgrade test_models_match.",
        type="linelist",
        default=[],
    )


def _words(config: pytest.Config, name: str) -> list[str]:
    """An ini list option's values, one per line or several on a line."""
    return [word for line in config.getini(name) for word in str(line).split()]


def _root(config: pytest.Config) -> Path:
    return config.inipath.parent if config.inipath is not None else config.rootpath


def _overriding_fixture(node: pytest.Collector) -> Any:
    """The project's own ``flask_alembic_app`` fixture visible from ``node``, if any.

    pytest has no public way to ask this while collecting: its fixture manager is read
    (``getfixturedefs``, stable since pytest 8.1), and without one no override is seen.
    """
    manager = getattr(node.session, "_fixturemanager", None)
    if manager is None:
        return None
    definitions = manager.getfixturedefs("flask_alembic_app", node) or ()
    for definition in reversed(definitions):
        if definition.func is not _default_app_function:
            return definition
    return None


def _collection_app(config: pytest.Config, node: pytest.Collector) -> Flask | None:
    """The app, loaded once for the session: from the ini, or the project's fixture."""
    from .testing import load_app

    state = _session(config)
    if state.app is not None:
        return state.app
    import_path = str(config.getini("flask_alembic_app") or "").strip()
    if import_path:
        state.app = load_app(import_path, _root(config))
        state.import_path = import_path
    else:
        definition = _overriding_fixture(node)
        if definition is None:
            return None
        state.app = _call_fixture(definition)
    return state.app


def _call_fixture(definition: Any) -> Flask:
    """The app an overriding fixture returns, to learn the binds at collection time."""
    from .errors import FlaskAlembicError

    function = definition.func
    if inspect.signature(function).parameters:
        raise FlaskAlembicError(
            "The flask_alembic_app fixture takes other fixtures "
            f"({', '.join(inspect.signature(function).parameters)}); the generated tests "
            "need the app when they are collected.",
            hint="Make the fixture take no arguments, or name the app in the ini file: "
            "flask_alembic_app = package.module:create_app.",
        )
    value = function()
    if inspect.isgenerator(value):
        app = next(value)
        value.close()
        value = app
    return value  # type: ignore[no-any-return]


class _Checks(pytest.Module):
    """The generated tests, collected under the project's first ``conftest.py``."""

    def _getobj(self) -> Any:
        from . import pytest_checks

        return pytest_checks

    def collect(self) -> Any:
        from .errors import FlaskAlembicError

        state = _session(self.config)
        named = str(self.config.getini("flask_alembic_app") or "").strip()
        overridden = _overriding_fixture(self) is not None
        if not named and not overridden:
            return []  # not asked for: nothing imported, nothing collected
        if named and overridden:
            raise self.CollectError(
                "flask-alembic: the ini file names an app (flask_alembic_app) and a "
                "flask_alembic_app fixture overrides it: the tests would run on another app "
                "than the one their binds were read from. Keep one of the two."
            )
        try:
            app = _collection_app(self.config, self)
            if app is None:
                return []
            state.binds = _managed_binds(app)
        except FlaskAlembicError as exc:
            raise self.CollectError(f"flask-alembic: {exc}") from None
        wanted = set(_words(self.config, "flask_alembic_tests"))
        from . import pytest_checks

        unknown = sorted(wanted - set(pytest_checks.TESTS))
        if unknown:
            raise self.CollectError(
                f"flask-alembic: flask_alembic_tests names no test {', '.join(unknown)}; "
                f"the tests are {', '.join(pytest_checks.TESTS)}."
            )
        items = list(super().collect())
        if wanted:
            items = [i for i in items if i.name.split("[")[0] in wanted]
        return items


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Host the generated tests with the first ``conftest.py``; whether there are any is
    known once its fixtures are (:meth:`_Checks.collect`)."""
    if file_path.name != "conftest.py":
        return None
    state = _session(parent.config)
    if state.hosted:
        return None
    state.hosted = True
    return _Checks.from_parent(parent, path=file_path)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``flask_alembic_bind``: one test per managed bind of the app, ``[bind]`` in its id."""
    if "flask_alembic_bind" not in metafunc.fixturenames:
        return
    from .errors import FlaskAlembicError

    state = _session(metafunc.config)
    if not state.binds:
        parent: Any = metafunc.definition.parent
        try:
            app = _collection_app(metafunc.config, parent)
            if app is None:
                raise FlaskAlembicError(
                    f"{metafunc.function.__name__} takes flask_alembic_bind, but no app is named.",
                    hint="Set flask_alembic_app = package.module:create_app in the ini file, "
                    "or override the flask_alembic_app fixture.",
                )
            state.binds = _managed_binds(app)
        except FlaskAlembicError as exc:  # the message alone, as for the generated tests
            raise pytest.Collector.CollectError(f"flask-alembic: {exc}") from None
    metafunc.parametrize("flask_alembic_bind", state.binds, ids=list(state.binds))


def _managed_binds(app: Flask) -> tuple[str, ...]:
    from .app_imports import extension_of

    alembic = extension_of(app)
    with app.app_context():
        return tuple(b.name for b in alembic.registry.all if b.managed)


@pytest.hookimpl(trylast=True)  # after -k and -m deselected theirs
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if _session(config).hosted:
        config.stash[_ITEMS] = [i for i in items if isinstance(i.parent, _Checks)]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Say so when an app is named but no ``conftest.py`` was there to carry its tests
    (only when whole folders were collected: a file or a test asked for is not one)."""
    config = session.config
    if _session(config).hosted or not str(config.getini("flask_alembic_app") or "").strip():
        return
    if not all(Path(arg.split("::")[0]).is_dir() for arg in config.args):
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            "flask-alembic: flask_alembic_app is set, but no conftest.py was collected to "
            "carry the migration tests: add one (it may be empty) to your tests folder.",
            yellow=True,
        )


def pytest_configure(config: pytest.Config) -> None:
    """A bad ``flask_alembic_servers`` is one usage error, before anything runs."""
    if not config.getini("flask_alembic_servers"):
        return
    from .errors import FlaskAlembicError
    from .testing import parse_servers

    try:
        parse_servers(config.getini("flask_alembic_servers"))
    except FlaskAlembicError as exc:
        raise pytest.UsageError(f"flask-alembic: {exc}") from None


def pytest_report_header(config: pytest.Config) -> str | None:
    import_path = str(config.getini("flask_alembic_app") or "").strip()
    if not import_path:
        return None
    from .redact import safe_url
    from .testing import parse_servers

    servers = parse_servers(config.getini("flask_alembic_servers"))  # checked at configure
    by_server: dict[str, list[str]] = {}
    for bind, url in servers.items():
        by_server.setdefault(safe_url(url), []).append(bind)
    where = [
        f"{'every bind' if binds == ['*'] else ', '.join(b for b in binds if b != '*')}"
        f"{' (and every other bind)' if '*' in binds and binds != ['*'] else ''} on {server}"
        for server, binds in by_server.items()
    ]
    if "*" not in servers:
        where.append(
            "other binds on temporary SQLite files" if servers else "temporary SQLite files"
        )
    return f"flask-alembic: app {import_path}; test databases: {'; '.join(where)}"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    checks = sys.modules.get("flask_alembic.pytest_checks")  # imported only when used
    skipped: list[Any] = config.stash.get(checks.SKIPPED, []) if checks is not None else []
    if not skipped:
        return
    terminalreporter.section("flask-alembic: downgrades not tested")
    for s in skipped:
        terminalreporter.line(f"{s.bind}: {s.revision} ({s.path}): {s.reason}")


# -- fixtures -------------------------------------------------------------------------


def _default_app_function(pytestconfig: pytest.Config) -> Flask:
    app = _session(pytestconfig).app
    if app is None:
        import_path = str(pytestconfig.getini("flask_alembic_app") or "").strip()
        if not import_path:
            pytest.fail(
                "flask-alembic: no app named. Set flask_alembic_app = package.module:create_app "
                "in the ini file, or override the flask_alembic_app fixture.",
                pytrace=False,
            )
        from .errors import FlaskAlembicError
        from .testing import load_app

        loaded: Flask | str
        try:
            loaded = load_app(import_path, _root(pytestconfig))
        except FlaskAlembicError as exc:
            loaded = f"flask-alembic: {exc}"
        if isinstance(loaded, str):  # outside the handler: no "During handling" chain
            pytest.fail(loaded, pytrace=False)
        app = _session(pytestconfig).app = loaded
        _session(pytestconfig).import_path = import_path
    return app


flask_alembic_app = pytest.fixture(scope="session", name="flask_alembic_app")(_default_app_function)


@pytest.fixture(scope="session")
def flask_alembic_models(pytestconfig: pytest.Config, flask_alembic_app: Flask) -> list[str]:
    """The packages imported to find models the app never registers."""
    named = _words(pytestconfig, "flask_alembic_models")
    if named:
        return named
    import_path = _session(pytestconfig).import_path
    if import_path:
        from .testing import module_of

        module = module_of(import_path, _root(pytestconfig))
    else:
        module = flask_alembic_app.import_name
    return [module.split(".", 1)[0]]


@pytest.fixture(scope="session")
def flask_alembic_migrations(
    pytestconfig: pytest.Config, flask_alembic_app: Flask
) -> Iterator[Migrations]:
    """The app's migrations on fresh databases, one per bind, for the whole session."""
    from .errors import FlaskAlembicError
    from .testing import Migrations
    from .testing import parse_servers

    state = _session(pytestconfig)
    migrations: Migrations | None = None
    failure = ""
    try:
        migrations = Migrations(
            flask_alembic_app,
            servers=parse_servers(pytestconfig.getini("flask_alembic_servers")),
            minimum_revisions=_words(pytestconfig, "flask_alembic_minimum_revisions"),
            import_path=state.import_path if state.app is flask_alembic_app else None,
            root=_root(pytestconfig),
        )
    except FlaskAlembicError as exc:
        failure = f"flask-alembic: {exc}"
    if migrations is None:  # failed outside the handler: no "During handling" chain
        pytest.fail(failure, pytrace=False)
    # The up/down walk compares schemas only for the no-trace test, when it runs.
    generated = pytestconfig.stash.get(_ITEMS, [])
    migrations.compare_schemas = not generated or any(
        item.name.startswith("test_downgrade_leaves_no_trace[") for item in generated
    )
    try:
        yield migrations
    finally:
        migrations.close()


@pytest.fixture
def flask_alembic(flask_alembic_migrations: Migrations) -> Migrations:
    """The session's :class:`~flask_alembic.testing.Migrations`, every bind's database
    emptied first: ``flask_alembic.migrate_to("analytics@abc123")``, ``insert()``,
    ``rows()``, ``connect()``."""
    flask_alembic_migrations.reset()
    return flask_alembic_migrations
