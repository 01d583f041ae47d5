"""Alembic migrations for Flask apps with one database or several."""

from .errors import FlaskAlembicError
from .extension import Alembic
from .plan import MigrationResult
from .plan import Plan
from .plan import Step
from .registry import Bind
from .status import BindStatus

__all__ = [
    "Alembic",
    "Bind",
    "BindStatus",
    "FlaskAlembicError",
    "MigrationResult",
    "Plan",
    "Step",
]
