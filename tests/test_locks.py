"""Migration locks under stress: idle timeouts, killed connections, small pools, SQLite lock
files and reading while another process migrates; with real processes and servers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import MakeURL
from conftest import table_names
from conftest import version_rows

SERVERS = ["postgresql", "mysql"]

APP = """
import json, os
import sqlalchemy as sa
from flask import Flask
from flask_alembic import Alembic

def create_app():
    app = Flask(__name__)
    engine = sa.create_engine(os.environ["TEST_URL"], **json.loads(os.environ["ENGINE_OPTIONS"]))
    statement = os.environ.get("ON_CONNECT")
    if statement:
        @sa.event.listens_for(engine, "connect")
        def on_connect(dbapi_connection, record):
            cursor = dbapi_connection.cursor()
            cursor.execute(statement)
            cursor.close()
            dbapi_connection.commit()

    Alembic(app, engines=engine, metadatas=sa.MetaData())
    return app
"""

FLASK_SQLALCHEMY_APP = """
import json, os
from flask import Flask
from flask_alembic import Alembic
from flask_sqlalchemy import SQLAlchemy

def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["TEST_URL"]
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = json.loads(os.environ["ENGINE_OPTIONS"])
    db = SQLAlchemy(app)
    db.Table("widget", db.Column("id", db.Integer, primary_key=True))
    Alembic(app)
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
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.create_table("half_{rev}", sa.Column("id", sa.Integer))
    op.execute("INSERT INTO runs (rev, pid) VALUES ('{rev}', %d)" % os.getpid())
    if bind.dialect.name == "sqlite" and os.environ.get("SPILL"):
        # More than the page cache holds: SQLite takes its EXCLUSIVE lock before the
        # commit, and readers of the file wait for it (up to their busy timeout).
        op.execute("PRAGMA cache_size = 2")
        op.create_table("filler", sa.Column("data", sa.Text))
        op.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) "
            "INSERT INTO filler SELECT hex(randomblob(500)) FROM n"
        )
    seconds = float(os.environ.get("SLEEP", "0"))
    if bind.dialect.name == "postgresql":
        op.execute("SELECT pg_sleep(%s)" % seconds)
    elif bind.dialect.name == "mysql":
        op.execute("SELECT SLEEP(%s)" % seconds)
    else:
        time.sleep(seconds)


def downgrade():
    pass
"""


class Project:
    """A project folder with an app and revisions, and the processes started in it."""

    def __init__(self, root: Path, url: str, revisions: int = 1, app: str = APP) -> None:
        self.root = root
        self.url = url
        migrations = root / "migrations"
        migrations.mkdir(parents=True)
        (root / "app.py").write_text(textwrap.dedent(app))
        template = Path(__file__).parent.parent / "migrations_template" / "script.py.mako"
        (migrations / "script.py.mako").write_text(template.read_text())
        self.revisions = [f"ab{n:04d}" for n in range(1, revisions + 1)]
        down = None
        for rev in self.revisions:
            labels = ("default",) if down is None else None
            (migrations / f"{rev}.py").write_text(
                REVISION.format(rev=rev, down=down, labels=labels)
            )
            down = rev
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "FORCE_COLOR"))
        }
        self.env.update(FLASK_APP="app:create_app", TEST_URL=url, NO_COLOR="1", ENGINE_OPTIONS="{}")
        self.processes: list[subprocess.Popen[str]] = []
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                sa.Table(
                    "runs",
                    sa.MetaData(),
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("rev", sa.String(20)),
                    sa.Column("pid", sa.Integer),
                ).create(conn)
        finally:
            engine.dispose()

    def start(
        self,
        *args: str,
        log: str = "run.log",
        prefix: tuple[str, ...] = (),
        options: dict[str, object] | None = None,
        **extra: str,
    ) -> subprocess.Popen[str]:
        """Start ``flask db ARGS``, its stderr written to ``log`` in the project."""
        env = {**self.env, **extra}
        if options is not None:
            env["ENGINE_OPTIONS"] = json.dumps(options)
        with open(self.root / log, "w") as handle:  # the child keeps its own descriptor
            process = subprocess.Popen(
                [*prefix, sys.executable, "-m", "flask", "db", *args],
                cwd=self.root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=handle,
                text=True,
            )
        self.processes.append(process)
        return process

    def run(
        self,
        *args: str,
        prefix: tuple[str, ...] = (),
        options: dict[str, object] | None = None,
        **extra: str,
    ) -> tuple[int, str, str]:
        """Run ``flask db ARGS`` to its end: exit code, stdout, stderr."""
        log = f"run-{len(self.processes)}.log"
        process = self.start(*args, log=log, prefix=prefix, options=options, **extra)
        out, _ = process.communicate(timeout=180)
        return process.returncode, out, (self.root / log).read_text()

    def log(self, name: str = "run.log") -> str:
        return (self.root / name).read_text()

    def wait_for(self, process: subprocess.Popen[str], text: str, log: str = "run.log") -> None:
        """Wait until ``text`` appears in the process's stderr."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if text in self.log(log):
                return
            if process.poll() is not None:
                raise AssertionError(f"process ended early: {self.log(log)}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {text!r}: {self.log(log)}")

    def runs(self) -> list[tuple[str, int]]:
        """The (revision, process id) rows the migrations inserted, in order."""
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT rev, pid FROM runs ORDER BY id"))
                return [(row.rev, row.pid) for row in rows]
        finally:
            engine.dispose()

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.communicate()


@pytest.fixture
def make_project(tmp_path: Path) -> Iterator[Callable[..., Project]]:
    """``make_project(url)``: a project; every process it starts is killed at the end."""
    made: list[Project] = []

    def factory(url: str, revisions: int = 1, app: str = APP) -> Project:
        project = Project(tmp_path / f"project{len(made)}", url, revisions, app)
        made.append(project)
        return project

    yield factory
    for project in made:
        project.kill_all()


MakeProject = Callable[..., Project]


def lock_holder(project: Project) -> int:
    """The server's id for the connection holding the default bind's migration lock."""
    url = sa.make_url(project.url)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if url.get_backend_name() == "postgresql":
                found = conn.execute(
                    sa.text(
                        "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                        " WHERE l.locktype = 'advisory' AND l.granted AND d.datname = :name"
                    ),
                    {"name": url.database},
                ).scalar()
            else:
                found = conn.execute(
                    sa.text("SELECT IS_USED_LOCK(:name)"), {"name": _mysql_lock_name(project)}
                ).scalar()
    finally:
        engine.dispose()
    assert found is not None, "nobody holds the lock"
    return int(found)


def _mysql_lock_name(project: Project) -> str:
    from flask import Flask

    from flask_alembic import Alembic
    from flask_alembic.identity import Identities
    from flask_alembic.locking import lock_name

    app = Flask("probe", root_path=str(project.root))
    engine = sa.create_engine(project.url)
    try:
        alembic = Alembic(app, engines=engine, metadatas=sa.MetaData(), run_mkdir=False)
        with app.app_context():
            bind = alembic.registry["default"]
            return lock_name(bind, bind.identity(Identities()))[:64]
    finally:
        engine.dispose()


def kill_connection(project: Project, holder: int) -> None:
    """Terminate the server connection ``holder`` from another connection."""
    engine = sa.create_engine(project.url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": holder})
            else:
                conn.execute(sa.text(f"KILL {int(holder)}"))
    finally:
        engine.dispose()


# -- 1. A lost lock is noticed --------------------------------------------------------


def idle_timeout(dialect: str) -> dict[str, object]:
    """Engine options making the server close a connection idle for 3 seconds."""
    if dialect == "postgresql":
        return {"connect_args": {"options": "-c idle_session_timeout=3000"}}
    return {"connect_args": {"init_command": "SET SESSION wait_timeout=3"}}


@pytest.mark.parametrize("dialect", SERVERS)
def test_idle_timeout_does_not_lose_the_lock(
    make_url: MakeURL, make_project: MakeProject, dialect: str
) -> None:
    """A server closing idle connections after 3 s: the second upgrade waits, the step runs once."""
    project = make_project(make_url(dialect))
    options = idle_timeout(dialect)
    first = project.start("upgrade", log="first.log", options=options, SLEEP="8")
    project.wait_for(first, "plan 1. default: upgrade", log="first.log")
    time.sleep(5)  # the lock's connection has been idle longer than the server allows
    second = project.start("upgrade", log="second.log", options=options, SLEEP="8")
    assert second.wait(timeout=120) == 0, project.log("second.log")
    assert first.wait(timeout=120) == 0, project.log("first.log")
    assert "Waiting for another process migrating bind 'default'" in project.log("second.log")
    assert "Nothing to do" in project.log("second.log")
    assert project.runs() == [("ab0001", first.pid)]
    assert version_rows(project.url) == {"ab0001"}


@pytest.mark.parametrize("dialect", SERVERS)
def test_killed_lock_connection_stops_the_run(
    make_url: MakeURL, make_project: MakeProject, dialect: str
) -> None:
    """The lock's connection killed during a step: the run stops, exit 1, no version row."""
    project = make_project(make_url(dialect))
    process = project.start("upgrade", SLEEP="4")
    project.wait_for(process, "plan 1. default: upgrade")
    time.sleep(1)  # inside the step's sleep
    kill_connection(project, lock_holder(project))
    assert process.wait(timeout=120) == 1
    text = project.log()
    assert "Lost the migration lock of bind 'default'" in text
    assert "another process may be migrating the database now" in text
    assert "Traceback" not in text
    assert version_rows(project.url) == set()
    assert project.runs() == []  # the step's insert was rolled back
    if dialect == "postgresql":
        assert "half_ab0001" not in table_names(project.url)  # and so was its DDL
    code, _, err = project.run("upgrade", "--lock-timeout", "20")
    assert code == 0, err
    assert version_rows(project.url) == {"ab0001"}


# -- 2. Locks do not borrow from the app's pool ------------------------------------------


@pytest.mark.parametrize("dialect", SERVERS)
def test_pool_of_one_connection(make_url: MakeURL, make_project: MakeProject, dialect: str) -> None:
    """A pool of one connection (pool_size=1, max_overflow=0): the lock takes none of it."""
    project = make_project(make_url(dialect), revisions=2, app=FLASK_SQLALCHEMY_APP)
    options: dict[str, object] = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 2}
    started = time.monotonic()
    code, _, err = project.run("upgrade", options=options)
    assert code == 0, err
    assert time.monotonic() - started < 20
    assert version_rows(project.url) == {"ab0002"}
    code, _, err = project.run("upgrade", options=options)
    assert code == 0, err
    assert "Nothing to do" in err


@pytest.mark.parametrize("dialect", SERVERS)
def test_lock_connection_keeps_connect_options(
    make_url: MakeURL, make_project: MakeProject, dialect: str
) -> None:
    """The lock's own connection is made with the engine's connect arguments and listeners."""
    password = "s3cr3t-Pw"
    full = sa.make_url(make_url(dialect, password=password))
    project = make_project(full.render_as_string(hide_password=False))
    # The app's URL has no password: it reaches the driver only through connect_args.
    without = sa.URL.create(
        full.drivername,
        username=full.username,
        host=full.host,
        port=full.port,
        database=full.database,
    ).render_as_string(hide_password=False)
    assert password not in without
    engine = sa.create_engine(full)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE connects (id INTEGER)"))
    engine.dispose()
    if dialect == "postgresql":
        connection_id = "pg_backend_pid()"
        args: dict[str, object] = {"password": password, "application_name": "fa-deploy"}
    else:
        connection_id = "CONNECTION_ID()"
        args = {"password": password}
    process = project.start(
        "upgrade",
        options={"connect_args": args},
        ON_CONNECT=f"INSERT INTO connects VALUES ({connection_id})",
        TEST_URL=without,
        SLEEP="3",
    )
    project.wait_for(process, "plan 1. default: upgrade")
    holder = lock_holder(project)
    engine = sa.create_engine(full)
    try:
        with engine.connect() as conn:
            seen = {row[0] for row in conn.execute(sa.text("SELECT id FROM connects"))}
            application = None
            if dialect == "postgresql":
                application = conn.execute(
                    sa.text("SELECT application_name FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": holder},
                ).scalar()
    finally:
        engine.dispose()
    assert holder in seen, project.log()  # the connect listener ran on the lock's connection
    if dialect == "postgresql":
        assert application == "fa-deploy"  # a connect argument
    assert process.wait(timeout=120) == 0, project.log()
    assert password not in project.log()


# -- 3. The SQLite lock file lives beside the database -------------------------------------


def sqlite_url(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'app.db'}"


def lock_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.lock"))


def test_sqlite_lock_file_beside_the_database(tmp_path: Path, make_project: MakeProject) -> None:
    """The lock file is in the database's folder, holds the pid, and goes away after the run."""
    folder = tmp_path / "instance"
    project = make_project(sqlite_url(folder))
    temporary = tmp_path / "system-tmp"
    temporary.mkdir()
    process = project.start("upgrade", SLEEP="3", TMPDIR=str(temporary))
    project.wait_for(process, "plan 1. default: upgrade")
    (lock,) = lock_files(folder)
    assert lock.name.startswith("flask_alembic-")
    assert lock.read_text().split()[0] == str(process.pid)
    assert process.wait(timeout=120) == 0, project.log()
    assert lock_files(folder) == []
    assert list(temporary.iterdir()) == []  # nothing in the system's temporary folder


def test_sqlite_spellings_exclude_each_other(tmp_path: Path, make_project: MakeProject) -> None:
    """Relative, absolute and symlinked paths to one SQLite file take one lock."""
    folder = tmp_path / "data"
    project = make_project(sqlite_url(folder), revisions=2)
    (project.root / "db").symlink_to(folder)
    (tmp_path / "link.db").symlink_to(folder / "app.db")
    spellings = [
        project.url,
        f"sqlite:///{os.path.relpath(folder / 'app.db', project.root)}",
        "sqlite:///db/app.db",
        f"sqlite:///{tmp_path / 'link.db'}",
    ]
    processes = [
        project.start("upgrade", log=f"spelling{n}.log", TEST_URL=url, SLEEP="1")
        for n, url in enumerate(spellings)
    ]
    for n, process in enumerate(processes):
        assert process.wait(timeout=120) == 0, project.log(f"spelling{n}.log")
    assert [rev for rev, _ in project.runs()] == ["ab0001", "ab0002"]
    assert version_rows(project.url) == {"ab0002"}
    assert lock_files(folder) == []


def test_sqlite_waiter_follows_a_removed_lock_file(
    tmp_path: Path, make_project: MakeProject
) -> None:
    """A run that waited on a lock file since removed locks the new one: a third run waits."""
    from flask import Flask

    from flask_alembic import Alembic
    from flask_alembic.identity import Identities
    from flask_alembic.locking import lock_binds

    folder = tmp_path / "instance"
    project = make_project(sqlite_url(folder))
    app = Flask("holder", root_path=str(project.root))
    engine = sa.create_engine(project.url)
    alembic = Alembic(app, engines=engine, metadatas=sa.MetaData())
    with app.app_context(), lock_binds(alembic.registry, 5, Identities()):
        waiter = project.start("upgrade", SLEEP="4")
        project.wait_for(waiter, "Waiting for another process migrating bind 'default'")
    engine.dispose()
    project.wait_for(waiter, "plan 1. default: upgrade")
    code, _, err = project.run("upgrade", "--lock-timeout", "0")
    assert code == 1, err
    assert "Timed out after 0s waiting for the migration lock of bind 'default'" in err
    assert f"(held by process {waiter.pid} (lock file {folder}" in err
    assert waiter.wait(timeout=120) == 0, project.log()
    assert project.runs() == [("ab0001", waiter.pid)]


def test_sqlite_two_version_tables_in_one_file(tmp_path: Path) -> None:
    """Two version tables in one SQLite file have two locks: one process may hold both."""
    from flask import Flask

    from flask_alembic import Alembic
    from flask_alembic.identity import Identities
    from flask_alembic.locking import lock_binds

    url = sqlite_url(tmp_path / "shared")
    engines = {"default": sa.create_engine(url), "other": sa.create_engine(url)}
    first, second = sa.MetaData(), sa.MetaData()
    sa.Table("a", first, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("b", second, sa.Column("id", sa.Integer, primary_key=True))
    app = Flask("two", root_path=str(tmp_path))
    app.config["ALEMBIC_BINDS"] = {"other": {"version_table": "other_version"}}
    alembic = Alembic(
        app, engines=engines, metadatas={"default": first, "other": second}, run_mkdir=False
    )
    identities = Identities()
    with app.app_context():
        default, other = alembic.registry["default"], alembic.registry["other"]
        with lock_binds([default], 1, identities), lock_binds([other], 1, identities):
            assert len(lock_files(tmp_path / "shared")) == 2
    for engine in engines.values():
        engine.dispose()


@pytest.mark.parametrize(("folder_mode", "file_mode"), [(0o775, 0o664), (0o750, 0o640)])
def test_sqlite_lock_file_mode_follows_its_folder(
    tmp_path: Path, folder_mode: int, file_mode: int
) -> None:
    """A new lock file gets the permissions its folder gives, whatever the umask."""
    from flask import Flask

    from flask_alembic import Alembic
    from flask_alembic.identity import Identities
    from flask_alembic.locking import lock_binds

    folder = tmp_path / "shared"
    url = sqlite_url(folder)
    folder.chmod(folder_mode)
    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    sa.Table("a", metadata, sa.Column("id", sa.Integer, primary_key=True))
    app = Flask("mode", root_path=str(tmp_path))
    alembic = Alembic(app, engines=engine, metadatas=metadata, run_mkdir=False)
    umask = os.umask(0o077)
    try:
        with app.app_context(), lock_binds(alembic.registry, 1, Identities()):
            (lock,) = lock_files(folder)
            assert lock.stat().st_mode & 0o777 == file_mode
    finally:
        os.umask(umask)
        engine.dispose()
    assert lock_files(folder) == []


def test_sqlite_holder_on_another_host(tmp_path: Path, make_project: MakeProject) -> None:
    """status names a SQLite lock's holder on another host (a container sharing the volume)."""
    import fcntl

    from flask_alembic.lockfile import sqlite_lock_path

    folder = tmp_path / "instance"
    project = make_project(sqlite_url(folder))
    path = sqlite_lock_path(str(folder / "app.db"), None, "alembic_version")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"4242 web-2")
        code, out, err = project.run("status", "--json")
        assert code == 0, err
        (row,) = json.loads(out)["binds"]
        assert row["state"] == "migrating"
        assert f"(held by process 4242 on host web-2 (lock file {path}))" in row["error"]
        code, _, err = project.run("upgrade", "--lock-timeout", "0")
        assert code == 1
        assert "(held by process 4242 on host web-2" in err
    finally:
        os.close(fd)
        path.unlink()
    assert version_rows(project.url) == set()


def as_other_user() -> tuple[str, ...]:
    """A command prefix under which files of other users, and modes, are obeyed.

    As root, the child keeps uid 0 but loses the capabilities that bypass file permissions
    (so a file owned by ``nobody`` with mode 0600 cannot be opened); otherwise nothing.
    """
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root needs setpriv to drop the permission capabilities")
    return ("setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner")


def stale_lock(folder: Path, mode: int, *, foreign: bool) -> Path:
    """A lock file left by an earlier run (of another user, when ``foreign``)."""
    from flask_alembic.lockfile import sqlite_lock_path

    path = sqlite_lock_path(str(folder / "app.db"), None, "alembic_version")
    path.write_text("4242 elsewhere")
    if foreign:
        if os.geteuid() != 0:
            pytest.skip("only root can leave a file owned by another user")
        os.chown(path, 65534, 65534)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(("mode", "foreign"), [(0o444, False), (0o644, True)])
def test_sqlite_stale_lock_file_not_writable(
    tmp_path: Path, make_project: MakeProject, mode: int, foreign: bool
) -> None:
    """A stale lock file this user cannot write does not stop a run that can still lock it."""
    folder = tmp_path / "instance"
    project = make_project(sqlite_url(folder))
    path = stale_lock(folder, mode, foreign=foreign)
    code, _, err = project.run("upgrade", prefix=as_other_user())
    assert code == 0, err
    assert version_rows(project.url) == {"ab0001"}
    assert not path.exists()  # removed when the lock was released


@pytest.mark.parametrize(("mode", "foreign"), [(0o000, False), (0o600, True)])
def test_sqlite_stale_lock_file_unreadable(
    tmp_path: Path, make_project: MakeProject, mode: int, foreign: bool
) -> None:
    """A lock file this user cannot open fails clearly, naming it and the fix; nothing runs."""
    folder = tmp_path / "instance"
    project = make_project(sqlite_url(folder))
    path = stale_lock(folder, mode, foreign=foreign)
    code, _, err = project.run("upgrade", prefix=as_other_user())
    assert code == 1
    assert f"Cannot open the migration lock file {path} of bind 'default'" in err
    assert "Remove it" in err
    assert "Traceback" not in err
    assert "Timed out" not in err
    assert version_rows(project.url) == set()
    path.chmod(0o600)


def test_sqlite_folder_not_writable(tmp_path: Path, make_project: MakeProject) -> None:
    """A database folder the lock file cannot be created in fails clearly, naming the folder."""
    folder = tmp_path / "instance"
    project = make_project(sqlite_url(folder))
    folder.chmod(0o555)
    try:
        code, _, err = project.run("upgrade", prefix=as_other_user())
    finally:
        folder.chmod(0o755)
    assert code == 1
    assert "Cannot create the migration lock file" in err
    assert f"write access to {folder}" in err
    assert "Traceback" not in err
    assert version_rows(project.url) == set()


def plant(path: Path, kind: str, victim: Path) -> None:
    """Put something that is not a lock file of its own at the lock file's path."""
    if kind == "symlink":
        path.symlink_to(victim)
    elif kind == "dangling symlink":
        path.symlink_to(path.parent / "nowhere")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        os.link(victim, path)


@pytest.mark.parametrize(
    ("kind", "described"),
    [
        ("symlink", "a symbolic link"),
        ("dangling symlink", "a symbolic link"),
        ("fifo", "a named pipe (FIFO)"),
        ("directory", "a directory"),
        ("hard link", "a file with 2 hard links"),
    ],
)
def test_sqlite_lock_path_not_a_lock_file(
    tmp_path: Path, make_project: MakeProject, kind: str, described: str
) -> None:
    """Something else at the lock file's path is refused, named, and left as it was."""
    from flask_alembic.lockfile import sqlite_lock_path

    folder = tmp_path / "instance"
    project = make_project(sqlite_url(folder))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = sqlite_lock_path(str(folder / "app.db"), None, "alembic_version")
    plant(path, kind, victim)
    status = project.start("status", log="status.log")
    assert status.wait(timeout=30) == 0, project.log("status.log")  # a FIFO does not block
    code, _, err = project.run("upgrade")
    assert code == 1, err
    assert f"Cannot use the migration lock file {path} of bind 'default': it is {described}" in err
    assert "Remove it" in err
    assert "read access" not in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert victim.read_text() == "precious"
    assert os.path.lexists(path)
    assert version_rows(project.url) == set()


# -- 4. Reading during a migration ---------------------------------------------------


def test_status_while_migrating(make_url: MakeURL, make_project: MakeProject, dialect: str) -> None:
    """status and current say 'migrating', naming the holder, at once; --check exits 1."""
    project = make_project(make_url(dialect))
    if dialect == "postgresql":
        options: dict[str, object] = {"connect_args": {"application_name": "fa-deploy"}}
    else:
        options = {}
    process = project.start("upgrade", options=options, SLEEP="6", SPILL="1")
    project.wait_for(process, "plan 1. default: upgrade")
    time.sleep(0.5)  # inside the first step

    # The migration holds its lock for 6 s more: a status that waited for it would find the
    # bind up to date, so 'migrating' proves that it answered at once (no timing asserted).
    code, out, err = project.run("status", "--check")
    assert code == 1, err
    assert "state=migrating" in out

    code, out, err = project.run("status", "--json")
    assert code == 0, err
    (row,) = json.loads(out)["binds"]
    assert row["state"] == "migrating"
    assert row["pending"] is None
    if dialect == "postgresql":
        assert f"held by PostgreSQL backend pid {lock_holder(project)}" in row["error"]
        assert "application 'fa-deploy'" in row["error"]
    elif dialect == "mysql":
        assert f"held by connection {lock_holder(project)}" in row["error"]
    else:
        assert f"held by process {process.pid}" in row["error"]
        assert row["current"] == []  # not read: SQLite would wait for the migration

    code, out, err = project.run("current")
    assert code == 0, err  # a migration under way is no failure to read
    assert "(migrating)" in out
    assert "default: Another process is migrating bind 'default' now (held by" in err
    assert "Error:" not in err
    code, out, err = project.run("current", "--check-heads")
    assert code == 1, err
    assert "database is locked" not in out + err

    assert process.wait(timeout=120) == 0, project.log()
    code, out, err = project.run("status", "--json")
    assert code == 0, err
    assert json.loads(out)["binds"][0]["state"] == "up to date"


TWO_BINDS_APP = """
import os
import sqlalchemy as sa
from flask import Flask
from flask_alembic import Alembic

def create_app():
    app = Flask(__name__)
    app.config["ALEMBIC_BINDS"] = {"b1": {"version_table": "b1_version"}}
    engines = {name: sa.create_engine(os.environ["TEST_URL"]) for name in ("default", "b1")}
    metadatas = {name: sa.MetaData() for name in engines}
    sa.Table("b1_thing", metadatas["b1"], sa.Column("id", sa.Integer, primary_key=True))
    Alembic(app, engines=engines, metadatas=metadatas)
    return app
"""


def two_binds_in_one_file(tmp_path: Path, make_project: MakeProject) -> Project:
    """Binds 'default' and 'b1' in one SQLite file, with a version table each; b1 migrated."""
    project = make_project(sqlite_url(tmp_path / "data"), app=TWO_BINDS_APP)
    (project.root / "migrations" / "b1").mkdir()
    (project.root / "migrations" / "b1" / "bb0001.py").write_text(
        REVISION.format(rev="bb0001", down=None, labels=("b1",))
    )
    code, _, err = project.run("upgrade", "--bind", "b1")
    assert code == 0, err
    return project


def test_sqlite_status_while_another_bind_of_the_file_migrates(
    tmp_path: Path, make_project: MakeProject
) -> None:
    """A bind whose file another bind's migration locks is 'migrating', at once, named so."""
    project = two_binds_in_one_file(tmp_path, make_project)
    process = project.start("upgrade", "--bind", "default", SLEEP="6", SPILL="1")
    project.wait_for(process, "plan 1. default: upgrade")
    time.sleep(0.5)  # inside the step, holding the file's write lock

    # 'migrating' (not 'up to date') proves it did not wait for the 6 s step to end.
    code, out, err = project.run("status", "--check")
    assert code == 1, err
    assert "unreachable" not in out + err
    assert "b1: state=migrating" in out

    code, out, err = project.run("status", "--json", "--bind", "b1")
    assert code == 0, err
    (row,) = json.loads(out)["binds"]
    assert row["state"] == "migrating"
    assert row["pending"] is None
    assert "bind 'default' (version table alembic_version)" in row["error"]
    assert f"held by process {process.pid}" in row["error"]
    assert "version_table'" not in row["error"]

    code, out, err = project.run("current", "--bind", "b1")
    assert code == 0, err
    assert "(migrating)" in out

    assert process.wait(timeout=120) == 0, project.log()
    code, out, err = project.run("status", "--check")
    assert code == 0, out + err


@contextmanager
def file_locked_by_a_connection(database: Path) -> Iterator[None]:
    """Another process holds the SQLite file's write lock (``BEGIN EXCLUSIVE``)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
            str(database),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        yield
    finally:
        holder.kill()
        holder.communicate()


def test_sqlite_status_while_a_connection_locks_the_file(
    tmp_path: Path, make_project: MakeProject
) -> None:
    """A file locked by a connection that is no migration: 'unreachable' at once, saying so."""
    project = two_binds_in_one_file(tmp_path, make_project)
    code, _, err = project.run("upgrade")
    assert code == 0, err
    with file_locked_by_a_connection(tmp_path / "data" / "app.db"):
        # How long it waits is test_sqlite_status_restores_the_busy_timeout's to check.
        code, out, err = project.run("status", "--json")
    assert code == 0, err
    rows = {row["bind"]: row for row in json.loads(out)["binds"]}
    for name in ("default", "b1"):
        assert rows[name]["state"] == "unreachable"
        assert "locked by another connection" in rows[name]["error"]
        assert "version_table'" not in rows[name]["error"]


def test_sqlite_status_restores_the_busy_timeout(tmp_path: Path) -> None:
    """status reads a locked file with a short busy timeout, then gives the pool's back.

    The pool's own busy timeout is 120 s: a status that waited for it would take minutes,
    so the bound below (far above the short timeout, far below the pool's) cannot flake
    on a slow machine.
    """
    from flask import Flask

    from flask_alembic import Alembic

    url = sqlite_url(tmp_path / "data")
    engine = sa.create_engine(url, pool_size=1, max_overflow=0, connect_args={"timeout": 120})
    metadata = sa.MetaData()
    sa.Table("a", metadata, sa.Column("id", sa.Integer, primary_key=True))
    app = Flask("busy", root_path=str(tmp_path))
    alembic = Alembic(app, engines=engine, metadatas=metadata)
    try:
        with app.app_context():
            with file_locked_by_a_connection(tmp_path / "data" / "app.db"):
                started = time.monotonic()
                (row,) = alembic.status()
                assert time.monotonic() - started < 60
            assert row.state == "unreachable"
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 120000
    finally:
        engine.dispose()
