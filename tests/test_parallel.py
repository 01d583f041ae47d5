"""Independent binds migrate side by side; dependent ones keep their order."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import MakeApp
from conftest import MakeURL
from conftest import table_names
from conftest import version_rows

from flask_alembic.errors import ConfigurationError
from flask_alembic.errors import MigrationFailedError

BODY = """def upgrade() -> None:
    import threading
    import time

    time.sleep(0.3)
    op.create_table("made_by_{bind}", sa.Column("thread", sa.String(100)))
    op.execute(
        sa.text("INSERT INTO made_by_{bind} (thread) VALUES (:t)").bindparams(
            t=threading.current_thread().name
        )
    )"""


def setup(make_app: MakeApp, make_url: MakeURL, dialect: str, binds: list[str], **config: object):  # type: ignore[no-untyped-def]
    urls = {name: make_url(dialect) for name in binds}
    options = dict(config.pop("ALEMBIC_BINDS", {}))  # type: ignore[call-overload]
    # No models: every bind is migrated by revisions written by hand.
    config["ALEMBIC_BINDS"] = {name: {**options.get(name, {}), "include": True} for name in binds}
    app, alembic = make_app(urls, {name: sa.MetaData() for name in binds}, **config)
    with app.app_context():
        for name in binds:
            script = alembic.revision("make", empty=True, bind=name)[0]
            path = Path(script.path)
            table = name.replace("-", "_")
            path.write_text(
                path.read_text()
                .replace("def upgrade() -> None:\n    pass", BODY.format(bind=table))
                .replace(
                    "def downgrade() -> None:\n    pass",
                    f"def downgrade() -> None:\n    op.drop_table('made_by_{table}')",
                )
            )
    return app, alembic, urls


def thread_of(url: str, bind: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            table = f"made_by_{bind.replace('-', '_')}"
            return str(conn.execute(sa.text(f"SELECT thread FROM {table}")).scalar())
    finally:
        engine.dispose()


def test_independent_binds_run_side_by_side(
    make_app: MakeApp, make_url: MakeURL, dialect: str
) -> None:
    """Each bind's migration runs on its own worker, on its own database, via `op`."""
    binds = ["default", "audit-log", "stats"]
    app, alembic, urls = setup(make_app, make_url, dialect, binds)
    with app.app_context():
        result = alembic.upgrade(parallel=3)
    assert {s.bind for s in result.applied} == set(binds)
    threads = {name: thread_of(urls[name], name) for name in binds}
    assert len(set(threads.values())) == 3
    assert all(name.startswith("flask-alembic") for name in threads.values())
    for name, url in urls.items():
        # `op` reached the right database from every thread.
        assert table_names(url) == {"alembic_version", f"made_by_{name.replace('-', '_')}"}
        assert len(version_rows(url)) == 1


def test_parallel_result_equals_sequential(make_app: MakeApp, make_url: MakeURL) -> None:
    """A parallel run's result lists the plan's steps, in the plan's order, like a sequential
    one."""
    binds = ["default", "stats"]
    app, alembic, _ = setup(make_app, make_url, "sqlite", binds)
    with app.app_context():
        heads = {name: alembic.heads(bind=name)[0].revision for name in binds}
        sequential = alembic.upgrade(parallel=1)
        alembic.downgrade("base", bind=binds, parallel=1)
        parallel = alembic.upgrade(parallel=2)
    expected = [("default", heads["default"]), ("stats", heads["stats"])]
    for result in (sequential, parallel):
        assert [(s.bind, s.revision) for s in result.plan.steps] == expected
        assert [(s.bind, s.revision) for s in result.applied] == expected
        for name in binds:
            assert [s.revision for s in result[name].applied] == [heads[name]]
            assert result[name].after == (heads[name],)


def test_sequential_uses_main_thread(make_app: MakeApp, make_url: MakeURL) -> None:
    """parallel=1 (or ALEMBIC_PARALLEL = 1) runs everything on the calling thread."""
    binds = ["default", "stats"]
    app, alembic, urls = setup(make_app, make_url, "sqlite", binds, ALEMBIC_PARALLEL=1)
    with app.app_context():
        alembic.upgrade()
    assert {thread_of(urls[name], name) for name in binds} == {"MainThread"}


def test_dependent_binds_keep_order(make_app: MakeApp, make_url: MakeURL) -> None:
    """A bind depending on another runs after it, on the same worker."""
    urls = {"default": make_url(), "reports": make_url()}
    app, alembic = make_app(
        urls,
        {"default": sa.MetaData(), "reports": sa.MetaData()},
        ALEMBIC_BINDS={name: {"include": True} for name in urls},
    )
    with app.app_context():
        base = alembic.revision("base", empty=True, bind="default")[0]
        alembic.revision("after", empty=True, bind="reports", depend=base.revision)
        plan = alembic.plan("upgrade", "heads")
        assert plan.links == (("default", "reports"),)
        result = alembic.run_plan(plan, parallel=4)
    assert [s.bind for s in result.applied] == ["default", "reports"]


def test_shared_database_not_parallel(make_app: MakeApp, make_url: MakeURL) -> None:
    """Binds in one database run one after another."""
    url = make_url()
    urls = {"default": url, "stats": url}
    app, alembic = make_app(
        urls,
        {"default": sa.MetaData(), "stats": sa.MetaData()},
        ALEMBIC_BINDS={
            "default": {"include": True},
            "stats": {"version_table": "stats_version", "include": True},
        },
    )
    with app.app_context():
        for name in urls:
            script = alembic.revision("make", empty=True, bind=name)[0]
            path = Path(script.path)
            path.write_text(
                path.read_text().replace("def upgrade() -> None:\n    pass", BODY.format(bind=name))
            )
        alembic.upgrade(parallel=4)
    assert thread_of(url, "default") == thread_of(url, "stats")


def test_failure_stops_other_workers(make_app: MakeApp, make_url: MakeURL) -> None:
    """A failing bind ends the run; other binds stop at their next step and report."""
    binds = ["default", "stats"]
    app, alembic, urls = setup(make_app, make_url, "sqlite", binds)
    with app.app_context():
        broken = alembic.revision("broken", empty=True, bind="stats")[0]
        alembic.revision("later", empty=True, bind="default")
    path = Path(broken.path)
    path.write_text(
        path.read_text().replace(
            "def upgrade() -> None:\n    pass",
            "def upgrade() -> None:\n    raise RuntimeError('stats broke')",
        )
    )
    with app.app_context(), pytest.raises(MigrationFailedError, match="stats broke") as info:
        alembic.upgrade(parallel=2)
    result = info.value.result
    assert result is not None
    assert result.failed is not None
    assert result.failed.bind == "stats"
    assert len(version_rows(urls["stats"])) == 1  # its first step is kept


def test_bad_parallel_setting(make_app: MakeApp, make_url: MakeURL) -> None:
    """ALEMBIC_PARALLEL must be a positive whole number."""
    app, alembic, _ = setup(make_app, make_url, "sqlite", ["default"], ALEMBIC_PARALLEL=0)
    with app.app_context(), pytest.raises(ConfigurationError, match="ALEMBIC_PARALLEL"):
        alembic.upgrade()
    result = app.test_cli_runner().invoke(args=["db", "upgrade", "--parallel", "0"])
    assert result.exit_code == 2
