"""The ``Alembic`` Flask extension: registering it on an app.

The Python API it offers lives in :mod:`flask_alembic.api`; this module adds ``init_app``:
the settings' defaults, the migrations folder and the ``flask db`` command group.
"""

from __future__ import annotations

import contextlib

from flask import Flask

from . import config
from .api import AlembicAPI
from .errors import FlaskAlembicError
from .registry import DEFAULT_BIND
from .registry import EnginesArg
from .registry import MetadatasArg
from .status import BindStatus
from .status import STATES

__all__ = ["DEFAULT_BIND", "STATES", "Alembic", "BindStatus"]


class Alembic(AlembicAPI):
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
        super().__init__(metadatas=metadatas, engines=engines)
        self.run_mkdir = run_mkdir
        self.command_name = command_name
        if app is not None:
            self.init_app(app)

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
        self._register(app)
        config.apply_defaults(app)

        if run_mkdir if run_mkdir is not None else self.run_mkdir:
            self._make_folder(app)

        name = command_name if command_name is not None else self.command_name
        if name:
            from .cli import db

            app.cli.add_command(db, name)

    @staticmethod
    def _make_folder(app: Flask) -> None:
        """Create the migrations folder if it is missing; never fail here.

        A bad ``script_location`` or a folder that cannot be created is reported by the
        first command or API call that needs it, as Flask-Alembic 3 did: an app factory
        must be able to register the extension whatever the config.
        """
        with contextlib.suppress(FlaskAlembicError, OSError):
            location = config.script_location(app)
            # Another tool's folder elsewhere: create nothing; first use says where it is.
            if not location.exists() and config.foreign_script_location(app) is None:
                from .writer import make_script_directory

                make_script_directory(location)
