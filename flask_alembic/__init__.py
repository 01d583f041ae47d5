"""Alembic migrations for Flask apps with one database or several."""

from .errors import FlaskAlembicError
from .extension import Alembic
from .extension import BindStatus
from .planner import MigrationResult
from .planner import Plan
from .planner import Step
from .registry import Bind

__all__ = [
    "Alembic",
    "Bind",
    "BindStatus",
    "FlaskAlembicError",
    "MigrationResult",
    "Plan",
    "Step",
]
