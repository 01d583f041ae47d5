"""Alembic migrations for Flask apps with one database or several."""

from typing import Any
from typing import TYPE_CHECKING

from .errors import FlaskAlembicError
from .extension import Alembic
from .extension import BindStatus
from .planner import Plan
from .planner import Step
from .registry import Bind

if TYPE_CHECKING:
    from .executor import MigrationResult

__all__ = [
    "Alembic",
    "Bind",
    "BindStatus",
    "FlaskAlembicError",
    "MigrationResult",
    "Plan",
    "Step",
]


def __getattr__(name: str) -> Any:
    # The executor is imported on first use, to keep `flask` start-up fast.
    if name == "MigrationResult":
        from .executor import MigrationResult

        return MigrationResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
