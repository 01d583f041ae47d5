"""Concurrent runs, killed runs and interrupted runs, with real processes and servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import MakeURL
from conftest import table_names
from conftest import version_rows

APP = """
import json, os
import sqlalchemy as sa
from flask import Flask
from flask_alembic import Alembic

def create_app():
    app = Flask(__name__)
    urls = json.loads(os.environ["TEST_URLS"])
    engines = {name: sa.create_engine(url) for name, url in urls.items()}
    Alembic(app, engines=engines, metadatas={name: sa.MetaData() for name in urls})
    return app
"""

REVISION = """
import os
import time
import sqlalchemy as sa
from alembic import op

revision = {rev!r}
down_revision = {down!r}
branch_labels = {labels!r}
depends_on = None


def upgrade():
{body}


def downgrade():
    pass
"""

CREATE_RUNS = """\
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rev", sa.String(20)),
    )
    op.execute("INSERT INTO runs (rev) VALUES ('{rev}')")
    time.sleep(float(os.environ.get("SLEEP", "1")))"""

INSERT_RUN = """\
    if op.get_bind().dialect.name == "postgresql":
        op.create_table("half", sa.Column("id", sa.Integer))
    op.execute("INSERT INTO runs (rev) VALUES ('{rev}')")
    time.sleep(float(os.environ.get("SLEEP", "1")))"""


def write_history(root: Path, bind: str, folder: Path, prefix: str) -> list[str]:
    """Two revisions for ``bind``: create the runs table, then record a second run."""
    folder.mkdir(parents=True, exist_ok=True)
    revs = [f"{prefix}0001", f"{prefix}0002"]
    bodies = [CREATE_RUNS.format(rev=revs[0]), INSERT_RUN.format(rev=revs[1])]
    down = None
    for rev, body in zip(revs, bodies, strict=True):
        labels = (bind,) if down is None else None
        (folder / f"{rev}.py").write_text(
            REVISION.format(rev=rev, down=down, labels=labels, body=body)
        )
        down = rev
    return revs


def make_project(
    tmp_path: Path, urls: dict[str, str]
) -> tuple[Path, dict[str, str], dict[str, list[str]]]:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "app.py").write_text(textwrap.dedent(APP))
    migrations = root / "migrations"
    history = {}
    for number, bind in enumerate(urls):
        folder = migrations if bind == "default" else migrations / bind
        history[bind] = write_history(root, bind, folder, f"{number + 1:02d}ab")
    template = Path(__file__).parent.parent / "migrations_template" / "script.py.mako"
    (migrations / "script.py.mako").write_text(template.read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "FORCE_COLOR"))}
    env.update(FLASK_APP="app:create_app", TEST_URLS=json.dumps(urls), NO_COLOR="1")
    return root, env, history


def flask(root: Path, env: dict[str, str], *args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "db", *args],
        cwd=root,
        env={**env, **extra},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=180)
    return process.returncode, out, err


def runs(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(row[0] for row in conn.execute(sa.text("SELECT rev FROM runs")))
    finally:
        engine.dispose()


def test_eight_processes_upgrade_at_once(tmp_path: Path, database_url: str) -> None:
    """8 simultaneous `flask db upgrade`: all exit 0, every migration ran exactly once."""
    root, env, history = make_project(tmp_path, {"default": database_url})
    processes = [flask(root, env, "upgrade") for _ in range(8)]
    results = [finish(p) for p in processes]
    for code, _, err in results:
        assert code == 0, err
    assert runs(database_url) == history["default"]
    assert version_rows(database_url) == {history["default"][-1]}
    # The ones that waited found nothing left to do, and said so.
    assert sum("Nothing to do" in err for _, _, err in results) == 7


def test_two_binds_opposite_orders(tmp_path: Path, make_url: MakeURL, dialect: str) -> None:
    """Processes naming two binds in opposite orders neither deadlock nor fail."""
    urls = {"default": make_url(dialect), "other": make_url(dialect)}
    root, env, history = make_project(tmp_path, urls)
    orders = [("default", "other"), ("other", "default")] * 3
    processes = [
        flask(root, env, "upgrade", "--bind", first, "--bind", second) for first, second in orders
    ]
    for process in processes:
        code, _, err = finish(process)
        assert code == 0, err
    for bind, url in urls.items():
        assert runs(url) == history[bind]
        assert version_rows(url) == {history[bind][-1]}


def wait_for(process: subprocess.Popen[str], path: Path, text: str, timeout: float = 60) -> None:
    """Wait until the process's stderr (teed to ``path``) contains ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        if process.poll() is not None:
            raise AssertionError(f"process ended early: {path.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {text!r}: {path.read_text()}")


def start_logged(
    root: Path, env: dict[str, str], log: Path, *args: str, **extra: str
) -> subprocess.Popen[str]:
    with open(log, "w") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "flask", "db", *args],
            cwd=root,
            env={**env, **extra},
            stdout=subprocess.DEVNULL,
            stderr=handle,
            text=True,
        )


def test_sigkill_mid_migration(tmp_path: Path, database_url: str) -> None:
    """SIGKILL in the middle of a migration: no lock left behind, the next run completes."""
    root, env, history = make_project(tmp_path, {"default": database_url})
    first, second = history["default"]
    log = tmp_path / "killed.log"
    process = start_logged(root, env, log, "upgrade", SLEEP="0")
    assert process.wait(timeout=120) == 0
    # Go back one step, then get killed while the second migration sleeps.
    assert finish(flask(root, env, "downgrade", first))[0] == 0
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM runs WHERE rev = '{second}'"))
        conn.execute(sa.text("DROP TABLE IF EXISTS half"))
    engine.dispose()
    process = start_logged(root, env, log, "upgrade", SLEEP="30")
    wait_for(process, log, "plan 1. default: upgrade")
    time.sleep(1.5)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    assert version_rows(database_url) == {first}
    assert runs(database_url) == [first]  # the killed migration's insert was rolled back
    if database_url.startswith("postgresql"):
        assert "half" not in table_names(database_url)  # and so was its DDL

    started = time.monotonic()
    code, _, err = finish(flask(root, env, "upgrade", "--lock-timeout", "20", SLEEP="0"))
    assert code == 0, err
    assert time.monotonic() - started < 20  # did not wait for a dead process's lock
    assert runs(database_url) == [first, second]
    assert version_rows(database_url) == {second}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_between_steps(tmp_path: Path, make_url: MakeURL, sig: signal.Signals) -> None:
    """SIGINT/SIGTERM finishes the current step, reports, exits 128+N and releases the lock."""
    url = make_url("sqlite")
    root, env, history = make_project(tmp_path, {"default": url})
    log = tmp_path / "signal.log"
    process = start_logged(root, env, log, "upgrade", SLEEP="2")
    wait_for(process, log, "plan 2. default: upgrade")
    time.sleep(0.5)  # inside the first migration's sleep
    process.send_signal(sig)
    assert process.wait(timeout=60) == 128 + sig
    text = log.read_text()
    assert f"interrupted by {sig.name}" in text
    assert "1 step(s) applied, 1 not run" in text
    assert version_rows(url) == {history["default"][0]}
    code, _, err = finish(flask(root, env, "upgrade", "--lock-timeout", "5", SLEEP="0"))
    assert code == 0, err
    assert version_rows(url) == {history["default"][1]}


def test_lock_timeout_names_holder(tmp_path: Path, database_url: str) -> None:
    """A run that cannot get the lock in time fails clearly, naming the bind; nothing changes."""
    root, env, history = make_project(tmp_path, {"default": database_url})
    log = tmp_path / "holder.log"
    holder = start_logged(root, env, log, "upgrade", SLEEP="6")
    wait_for(holder, log, "plan 1. default: upgrade")
    code, _, err = finish(flask(root, env, "upgrade", "--lock-timeout", "1", SLEEP="0"))
    assert code == 1
    assert "Timed out after 1s waiting for the migration lock of bind 'default'" in err
    assert "--lock-timeout" in err
    if database_url.startswith("postgresql"):
        assert "held by PostgreSQL backend pid" in err
    elif database_url.startswith("mysql"):
        assert "held by connection" in err
    else:
        assert f"held by process {holder.pid}" in err
    assert holder.wait(timeout=120) == 0
    assert version_rows(database_url) == {history["default"][-1]}


def test_no_lock_and_read_only_commands(tmp_path: Path, database_url: str) -> None:
    """While another process holds the lock, read-only commands and --no-lock do not wait."""
    from flask import Flask

    from flask_alembic import Alembic
    from flask_alembic.identity import Identities
    from flask_alembic.locking import lock_binds

    root, env, history = make_project(tmp_path, {"default": database_url})
    app = Flask("holder", root_path=str(root))
    engine = sa.create_engine(database_url)
    alembic = Alembic(app, engines=engine, metadatas=sa.MetaData())
    with app.app_context(), lock_binds(alembic.registry, 5, Identities()):
        first, second = history["default"]
        migrating = "default: Another process is migrating bind 'default' now (held by "
        # --plan lints the revisions (which reads no database, and waits for no lock).
        nothing = "   warning missing-downgrade: has a downgrade() that does nothing\n"
        linted = (
            f"Lint: 2 warnings in 2 revisions; 'flask db lint {first} {second}' shows how to "
            'fix each, and lint_allow = {"rule": "reason"} in a revision file accepts one.\n'
        )
        for args, expected in [
            (("status",), f"default: state=migrating; current=?; heads={second}; pending=?; "),
            (("current",), "default: ? (migrating)\n"),
            (("heads",), f"default: {first} -> {second} (head)\n"),
            (
                ("upgrade", "--plan"),
                f"1. default: upgrade base -> {first}\n{nothing}"
                f"2. default: upgrade {first} -> {second}\n{nothing}",
            ),
            (("upgrade", "--sql"), f"-- Running upgrade {first} -> {second}\n"),
        ]:
            started = time.monotonic()
            code, out, err = finish(flask(root, env, *args))
            assert code == 0, err
            assert time.monotonic() - started < 10, args
            if args[0] == "status":
                assert out.startswith(expected)
            elif args == ("upgrade", "--sql"):
                assert expected in out
            else:
                assert out == expected, args
            if args == ("current",):
                assert err.startswith(migrating)
            else:
                assert err == (linted if args == ("upgrade", "--plan") else ""), args
        code, _, err = finish(flask(root, env, "upgrade", "--lock-timeout", "0.5"))
        assert code == 1
        assert err.splitlines()[-1].startswith(
            "Error: Timed out after 0.5s waiting for the migration lock of bind 'default' (held by "
        )
        assert version_rows(database_url) == set()
        code, _, err = finish(flask(root, env, "upgrade", "--no-lock", SLEEP="0"))
        assert code == 0, err
    engine.dispose()
    assert version_rows(database_url) == {history["default"][-1]}
