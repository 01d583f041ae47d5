"""The migration tests the pytest plugin generates, one per bind (``[bind]`` in the id).

The plugin collects them next to the project's first ``conftest.py`` once an app is
named (see :mod:`flask_alembic.pytest_plugin`); a test module may also import them by
name. Each takes the ``flask_alembic_bind`` parameter the plugin fills with the app's
binds, and the session's :class:`~flask_alembic.testing.Migrations`.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from .errors import FlaskAlembicError
from .testing import CheckFailed
from .testing import Migrations
from .testing import Skipped

__all__ = [
    "SKIPPED",
    "TESTS",
    "test_downgrade_leaves_no_trace",
    "test_models_match",
    "test_models_registered",
    "test_single_head",
    "test_up_down",
    "test_upgrade",
]


#: The generated tests, in the order they run.
TESTS = (
    "test_single_head",
    "test_upgrade",
    "test_models_match",
    "test_up_down",
    "test_downgrade_leaves_no_trace",
    "test_models_registered",
)

#: The revisions whose downgrade was not tested, for the end-of-run summary.
SKIPPED = pytest.StashKey[list[Skipped]]()


@contextmanager
def _reported() -> Iterator[None]:
    """A failed check as a plain message: it names what to fix, a traceback would not."""
    failure: str | None = None
    try:
        yield
    except (CheckFailed, FlaskAlembicError) as exc:
        failure = str(exc)
    if failure is not None:  # without the check's traceback or its chain
        raise pytest.fail.Exception(failure, pytrace=False) from None


def _skips(request: pytest.FixtureRequest, run: Callable[[], list[Skipped]]) -> None:
    with _reported():
        skipped = run()
    if not skipped:
        return
    found = request.config.stash.setdefault(SKIPPED, [])
    found.extend(s for s in skipped if s not in found)
    # The walk just made (compare=False never walks again).
    checked = request.getfixturevalue("flask_alembic_migrations").walk(
        request.getfixturevalue("flask_alembic_bind"), compare=False
    )
    if not checked.checked:
        reasons = "; ".join(f"{s.revision}: {s.reason}" for s in skipped)
        pytest.skip(f"no revision's downgrade is tested ({reasons})")


def test_single_head(flask_alembic_migrations: Migrations, flask_alembic_bind: str) -> None:
    """The bind's history has exactly one head."""
    with _reported():
        flask_alembic_migrations.check_single_head(flask_alembic_bind)


def test_upgrade(flask_alembic_migrations: Migrations, flask_alembic_bind: str) -> None:
    """From empty databases to the heads, every bind together in the planner's order."""
    with _reported():
        flask_alembic_migrations.check_upgrade(flask_alembic_bind)


def test_models_match(flask_alembic_migrations: Migrations, flask_alembic_bind: str) -> None:
    """After the upgrade, autogenerate proposes nothing for the bind."""
    with _reported():
        flask_alembic_migrations.check_models_match(flask_alembic_bind)


def test_up_down(
    request: pytest.FixtureRequest, flask_alembic_migrations: Migrations, flask_alembic_bind: str
) -> None:
    """Each revision upgrades, downgrades and upgrades again, one at a time."""
    _skips(request, lambda: flask_alembic_migrations.check_up_down(flask_alembic_bind))


def test_downgrade_leaves_no_trace(
    request: pytest.FixtureRequest, flask_alembic_migrations: Migrations, flask_alembic_bind: str
) -> None:
    """Downgrading each revision gives back the schema from before it."""
    _skips(request, lambda: flask_alembic_migrations.check_no_trace(flask_alembic_bind))


def test_models_registered(
    flask_alembic_migrations: Migrations, flask_alembic_bind: str, flask_alembic_models: list[str]
) -> None:
    """No model of the app's package is left out of the bind's metadata."""
    with _reported():
        flask_alembic_migrations.check_models_registered(flask_alembic_bind, flask_alembic_models)
