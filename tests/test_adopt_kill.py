"""``flask db adopt`` killed (a real process, a real SIGKILL) at each point of a lockstep
conversion: no file is lost, and a re-run finishes the job, stamps included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MakeURL
from conftest import version_rows
from test_redteam_14 import dispose_all
from test_redteam_14 import flask_migrate_multidb

from flask_alembic.lockstep import ARCHIVE_NAME
from flask_alembic.lockstep import derived_id
from flask_alembic.lockstep import ID_MAP_NAME
from flask_alembic.lockstep import JOURNAL_NAME

KILL_AT = """
import json, os, signal, sys
sys.path.insert(0, os.getcwd())
from redapp import create_app

EVENT, WHERE, COUNT = sys.argv[2], sys.argv[3], int(sys.argv[4])
seen = []

def hook(event, args):
    # Killed at the COUNT-th EVENT whose first argument's name ends with WHERE.
    if event == EVENT and os.path.basename(str(args[0])).endswith(WHERE):
        if event == "open" and not set("wx") & set(str(args[1])):
            return
        seen.append(args[0])
        if len(seen) == COUNT:
            os.kill(os.getpid(), signal.SIGKILL)

sys.addaudithook(hook)
app, db = create_app(json.loads(sys.argv[1]), "alembic")
result = app.test_cli_runner().invoke(args=["db", "adopt"])
print(result.exit_code)
print(result.output)
"""

#: The renames of a conversion of one revision for two binds: the journal saved twice
#: (being written, then moving), the old file, the old template, the two new files, the
#: new template, then the archive.
RENAMES = 8


def kill(project: Path, urls: dict[str, str], event: str, where: str, count: int) -> None:
    (project / "killer.py").write_text(KILL_AT, encoding="utf-8")
    child = subprocess.run(
        [sys.executable, "killer.py", json.dumps(urls), event, where, str(count)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -9, child.stdout + child.stderr


def files(project: Path) -> set[str]:
    return {
        str(p.relative_to(project))
        for p in (project / "migrations").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def assert_converted(project: Path, urls: dict[str, str], rev: str, old: set[str]) -> None:
    """The conversion is whole: the old files in the archive, the new ones in place,
    nothing temporary left, each database stamped with its own id."""
    migrations = project / "migrations"
    archive = Path("migrations") / ARCHIVE_NAME
    (old_file,) = [name for name in old if name.startswith("migrations/versions/")]
    users = list(migrations.rglob(f"{derived_id(rev, 'users')}_*.py"))
    assert len(users) == 1
    assert files(project) == {
        *(name for name in old if name != "migrations/script.py.mako"),
        str(archive / "versions" / Path(old_file).name),
        str(archive / "script.py.mako"),
        str(archive / ID_MAP_NAME),
        "migrations/script.py.mako",
        str(users[0].relative_to(project)),
    }
    assert "def upgrade(engine_name" not in (project / old_file).read_text()
    assert (
        "def upgrade(engine_name"
        in (project / archive / "versions" / Path(old_file).name).read_text()
    )
    assert version_rows(urls["default"]) == {rev}
    assert version_rows(urls["users"]) == {derived_id(rev, "users")}


def rerun(module: object, urls: dict[str, str], *args: str) -> tuple[int, str]:
    app, db = module.create_app(urls, "alembic")  # type: ignore[attr-defined]
    try:
        result = app.test_cli_runner().invoke(args=["db", "adopt", *args])
    finally:
        with app.app_context():
            dispose_all(db)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("event", "where", "count"),
    [
        # Files are opened for writing: the journal's (being written), the two new files
        # and the new template, then the journal's again (moving).
        *(("open", ".lockstep-tmp", n) for n in (1, 2, 3, 4, 5)),
        *(("os.rename", "", n) for n in range(1, RENAMES + 1)),
        ("os.remove", JOURNAL_NAME, 1),  # every rename done, the journal not removed
    ],
    ids=[
        "journal-writing",
        "new-file-1",
        "new-file-2",
        "template",
        "journal-moving",
        *(f"rename-{n}" for n in range(1, RENAMES + 1)),
        "journal-removed",
    ],
)
def test_killed_adopt_rerun_finishes(
    project: Path,
    make_url: MakeURL,
    dialect: str,
    monkeypatch: pytest.MonkeyPatch,
    event: str,
    where: str,
    count: int,
) -> None:
    """Killed anywhere in the conversion: the databases are untouched, every old file is
    still somewhere, and a re-run converts (or finishes converting) and stamps."""
    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    module, rev = flask_migrate_multidb(project, urls, monkeypatch)
    old = files(project)
    kill(project, urls, event, where, count)
    # Killed before the journal was first saved, or after: as counted.
    journal = (project / "migrations" / JOURNAL_NAME).exists()
    assert journal == ((event, count) not in {("open", 1), ("os.rename", 1)})
    assert version_rows(urls["default"]) == {rev}
    assert version_rows(urls["users"]) == {rev}

    code, output = rerun(module, urls)
    assert code == 0, output
    assert_converted(project, urls, rev, old)
    # What was done with the stopped conversion is said: undone until the journal said
    # every byte was written, finished after.
    migrations = project / "migrations"
    finished = (
        f"The conversion of {migrations} was stopped midway (a killed run); it was finished "
        "from its journal."
    )
    undone = (
        f"The conversion of {migrations} was stopped midway (a killed run) before every file "
        "was written; it was undone from its journal, and done again here."
    )
    moving = event == "os.remove" or (event == "os.rename" and count > 2)
    assert (finished in " ".join(output.split())) == (journal and moving), output
    assert (undone in " ".join(output.split())) == (journal and not moving), output
    code, output = rerun(module, urls)  # a run after success changes nothing
    assert code == 0, output
    assert_converted(project, urls, rev, old)


def test_killed_twice_then_finished(
    project: Path, make_url: MakeURL, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The re-run that finishes a stopped conversion is killed itself, midway through its
    renames: a third run still finishes the job."""
    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    module, rev = flask_migrate_multidb(project, urls, monkeypatch)
    old = files(project)
    kill(project, urls, "os.rename", "", 4)
    journal = json.loads((project / "migrations" / JOURNAL_NAME).read_text())
    assert journal["phase"] == "moving"
    kill(project, urls, "os.rename", "", 2)
    code, output = rerun(module, urls)
    assert code == 0, output
    assert_converted(project, urls, rev, old)


def test_plan_after_a_kill_says_to_run_adopt(
    project: Path, make_url: MakeURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``adopt --plan`` changes nothing, so it cannot finish a stopped conversion: it says
    so (exit 1, naming the journal) and leaves every file where it is."""
    urls = {"default": make_url(), "users": make_url()}
    module, rev = flask_migrate_multidb(project, urls, monkeypatch)
    old = files(project)
    kill(project, urls, "os.rename", "", 5)
    before = files(project)
    migrations = project / "migrations"
    code, output = rerun(module, urls, "--plan")
    assert code == 1
    assert output == (
        f"Error: A conversion of the lockstep history in {migrations} was stopped midway "
        f"(its journal {migrations / JOURNAL_NAME} is there); --plan changes nothing, so it "
        "cannot finish it. Run 'flask db adopt' without --plan: it finishes (or undoes) "
        "that conversion first, then goes on.\n"
    )
    assert files(project) == before
    assert version_rows(urls["users"]) == {rev}
    code, output = rerun(module, urls)
    assert code == 0, output
    assert_converted(project, urls, rev, old)


FAIL_AT = """
import json, os, signal, sys
sys.path.insert(0, os.getcwd())
from redapp import create_app

FAIL, KILL = int(sys.argv[2]), int(sys.argv[3])
seen = []

def hook(event, args):
    # The FAIL-th rename fails (a disk error); the KILL-th (if any) kills the process.
    if event != "os.rename":
        return
    seen.append(args[0])
    if len(seen) == KILL:
        os.kill(os.getpid(), signal.SIGKILL)
    if len(seen) == FAIL:
        raise PermissionError(13, "Permission denied", str(args[1]))

sys.addaudithook(hook)
app, db = create_app(json.loads(sys.argv[1]), "alembic")
result = app.test_cli_runner().invoke(args=["db", "adopt"])
print(result.exit_code)
print(result.output)
"""


def fail(
    project: Path, urls: dict[str, str], at: int, kill_at: int
) -> subprocess.CompletedProcess[str]:
    (project / "failer.py").write_text(FAIL_AT, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "failer.py", json.dumps(urls), str(at), str(kill_at)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_rename_failure_undoes_everything(
    project: Path, make_url: MakeURL, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rename that fails midway (the users file's): every rename done is undone, every
    file written removed, the journal too; exit 1 naming the path; a re-run converts."""
    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    module, rev = flask_migrate_multidb(project, urls, monkeypatch)
    old = files(project)
    child = fail(project, urls, 6, 0)
    assert child.returncode == 0, child.stderr
    code, output = child.stdout.split("\n", 1)
    assert code == "1"
    assert files(project) == old
    assert version_rows(urls["users"]) == {rev}

    code_after, rerun_output = rerun(module, urls)
    assert code_after == 0, rerun_output
    assert_converted(project, urls, rev, old)
    (users,) = (project / "migrations").rglob(f"{derived_id(rev, 'users')}_*.py")
    assert output == (
        f"Error: Cannot write the converted history: Permission denied ({users}); nothing "
        "was changed. Fix what is named (a read-only folder, a full disk, something in the "
        "way), then convert again.\n\n"
    )


def test_killed_while_undoing_a_failed_rename(
    project: Path, make_url: MakeURL, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed while undoing a failed rename (after the default bind's new file was moved
    back): a re-run finishes the undoing, then converts."""
    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    module, rev = flask_migrate_multidb(project, urls, monkeypatch)
    old = files(project)
    child = fail(project, urls, 6, 9)
    assert child.returncode == -9, child.stdout + child.stderr
    journal = json.loads((project / "migrations" / JOURNAL_NAME).read_text())
    assert journal["phase"] == "undoing"
    code, output = rerun(module, urls)
    assert code == 0, output
    assert_converted(project, urls, rev, old)


WAIT_BEFORE_LOCKS = """
import json, os, sys, time
sys.path.insert(0, os.getcwd())
from redapp import create_app

def profile(frame, event, arg):
    # Stop where adopt takes the migration locks, after planning, until told to go.
    if (
        event == "call"
        and frame.f_code.co_name == "lock_binds"
        and frame.f_globals.get("__name__") == "flask_alembic.locking"
        and not os.path.exists("go")
    ):
        open("waiting", "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists("go") and time.monotonic() < deadline:
            time.sleep(0.05)

sys.setprofile(profile)
app, db = create_app(json.loads(sys.argv[1]), "alembic")
result = app.test_cli_runner().invoke(args=["db", "adopt"])
sys.setprofile(None)
print(result.exit_code)
print(result.output)
"""


def test_second_adopt_plans_again_after_the_first_converted(
    project: Path, make_url: MakeURL, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two adopts at once, both databases at the old revision: B plans the conversion,
    then (held just before it takes the locks) A converts and stamps. B then finds other
    files than it planned from: it plans again, finds nothing left to do, exits 0, and
    changes nothing (without that, it stops with "Bind 'users' moved")."""
    import time

    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    module, rev = flask_migrate_multidb(project, urls, monkeypatch)
    old = files(project)
    (project / "waiter.py").write_text(WAIT_BEFORE_LOCKS, encoding="utf-8")
    second = subprocess.Popen(
        [sys.executable, "waiter.py", json.dumps(urls)],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (project / "waiting").exists() and time.monotonic() < deadline:
            assert second.poll() is None, second.communicate()
            time.sleep(0.05)
        assert (project / "waiting").exists()
        code, output = rerun(module, urls)
        assert code == 0, output
        assert_converted(project, urls, rev, old)
        (project / "go").touch()
        out, err = second.communicate(timeout=120)
    finally:
        if second.poll() is None:
            second.kill()
        second.communicate()  # reaps it and closes its pipes, whatever happened above
    assert out.splitlines()[0] == "0", out + err
    assert_converted(project, urls, rev, old)


LOCKSTEP_STEP = """\\
revision = "{rev}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade(engine_name):
    globals()["upgrade_%s" % engine_name]()


def downgrade(engine_name):
    globals()["downgrade_%s" % engine_name]()


def upgrade_():
    pass


def downgrade_():
    pass


def upgrade_users():
    pass


def downgrade_users():
    pass
"""


def test_adopt_gives_up_when_the_files_keep_changing(
    project: Path, make_url: MakeURL, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each time adopt is about to take the locks, another revision file appears (another
    process at work): after three plans it stops, exit 1, nothing converted or stamped."""
    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    module, rev = flask_migrate_multidb(project, urls, monkeypatch)
    versions = project / "migrations" / "versions"
    added: list[str] = []
    entered: set[object] = set()

    def profile(frame: object, event: str, arg: object) -> None:
        code = frame.f_code  # type: ignore[attr-defined]
        if event != "call" or code.co_name != "lock_binds" or "locking" not in code.co_filename:
            return
        if frame not in entered:  # a generator's frame is called again when it resumes
            entered.add(frame)
            down = added[-1] if added else rev
            added.append(f"zz{len(added)}")
            text = LOCKSTEP_STEP.format(rev=added[-1], down=down)
            (versions / f"{added[-1]}_step.py").write_text(text, encoding="utf-8")

    app, db = module.create_app(urls, "alembic")  # type: ignore[attr-defined]
    sys.setprofile(profile)
    try:
        result = app.test_cli_runner().invoke(args=["db", "adopt"])
    finally:
        sys.setprofile(None)
        with app.app_context():
            dispose_all(db)
    assert added == ["zz0", "zz1", "zz2"]
    assert result.exit_code == 1
    assert result.output == (
        "Error: The migrations folder kept changing while adopting (another process is "
        "converting or moving it); nothing was changed. Run adopt again once the other "
        "process has finished.\n"
    )
    assert not (project / "migrations" / ARCHIVE_NAME).exists()
    assert version_rows(urls["default"]) == {rev}
    assert version_rows(urls["users"]) == {rev}


KILL_FA3 = """
import json, os, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from test_adopt import switched_app

seen = []

def hook(event, args):
    if event == "os.rename":
        seen.append(args[0])
        if len(seen) == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

sys.addaudithook(hook)
app = switched_app(Path(os.getcwd()), json.loads(sys.argv[1]), email=True)
app.test_cli_runner().invoke(args=["db", "adopt"])
"""


def test_flask_alembic_3_killed_with_no_revision_left_in_its_folder(
    project: Path, make_url: MakeURL, dialect: str
) -> None:
    """A Flask-Alembic 3 multi-database project keeps its revisions in migrations/ itself.
    Killed once both old files were moved and before the new ones were: migrations/ holds
    no revision, so no layout is found there; the journal still is, and a re-run finishes
    the job with the app's own settings."""
    from test_adopt import flask_alembic_3_multidb_project
    from test_adopt import switched_app

    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    flask_alembic_3_multidb_project(project, urls)
    (project / "killer.py").write_text(KILL_FA3, encoding="utf-8")
    tests = str(Path(__file__).parent)
    child = subprocess.run(
        [sys.executable, "killer.py", json.dumps(urls), "5", tests],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -9, child.stdout + child.stderr
    assert sorted(p.name for p in (project / "migrations").glob("*.py")) == []

    app = switched_app(project, urls, email=True)
    try:
        result = app.test_cli_runner().invoke(args=["db", "adopt"])
    finally:
        with app.app_context():
            dispose_all(app.extensions["sqlalchemy"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (project / "migrations").glob("*.py")) == [
        "c1_first.py",
        "c2_email.py",
    ]
    assert not (project / "migrations" / JOURNAL_NAME).exists()
    assert version_rows(urls["default"]) == {"c2"}
    assert version_rows(urls["users"]) == {derived_id("c2", "users")}


def test_rerun_cannot_finish_when_a_file_was_removed_by_hand(
    project: Path, make_url: MakeURL, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed midway, then a new file waiting under its temporary name was deleted by hand:
    the re-run cannot finish; it says which file is gone and how to start over (exit 1),
    and moves nothing: the old file stays in the staging folder, the journal stays."""
    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    module, rev = flask_migrate_multidb(project, urls, monkeypatch)
    kill(project, urls, "os.rename", "", 4)
    migrations = project / "migrations"
    (temp,) = migrations.rglob(f".{derived_id(rev, 'users')}_*.lockstep-tmp")
    temp.unlink()
    before = files(project)
    final = temp.with_name(temp.name[1 : -len(".lockstep-tmp")])

    code, output = rerun(module, urls)
    assert code == 1
    assert output == (
        f"Error: Cannot finish the conversion that was stopped in {migrations}: {temp} is "
        f"gone (it was to move to {final}). Put the migrations folder back as it was before "
        f"adopting, from the backup (without {JOURNAL_NAME} and the folders adopt made), "
        "then run adopt again.\n"
    )
    assert files(project) == before
    assert any(name.startswith(f"migrations/{ARCHIVE_NAME}.lockstep-tmp/") for name in before)
    assert version_rows(urls["default"]) == {rev}
    assert version_rows(urls["users"]) == {rev}


def test_rerun_with_an_unreadable_journal(
    project: Path, make_url: MakeURL, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed midway, then the journal was damaged: the re-run names it, says how to start
    over (exit 1), and moves nothing."""
    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    module, rev = flask_migrate_multidb(project, urls, monkeypatch)
    kill(project, urls, "os.rename", "", 4)
    journal = project / "migrations" / JOURNAL_NAME
    journal.write_text("{", encoding="utf-8")
    before = files(project)

    code, output = rerun(module, urls)
    assert code == 1
    assert output == (
        f"Error: Cannot read the journal {journal} of a conversion that was stopped: "
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1). "
        "Put the migrations folder back as it was before adopting, from the backup "
        f"(without {JOURNAL_NAME} and the folders adopt made), then run adopt again.\n"
    )
    assert files(project) == before
    assert version_rows(urls["users"]) == {rev}


@pytest.mark.parametrize(
    ("count", "put_back"),
    [(4, ["versions"]), (5, ["versions", "script.py.mako"]), (6, ["script.py.mako"])],
    ids=["old-file-moved", "template-moved", "first-new-file-moved"],
)
def test_files_put_back_by_hand_after_a_kill_are_removed_when_the_same(
    project: Path,
    make_url: MakeURL,
    dialect: str,
    monkeypatch: pytest.MonkeyPatch,
    count: int,
    put_back: list[str],
) -> None:
    """Killed after the conversion moved the old revision (and the old template) away; the
    operator puts back, byte for byte, what is gone from its place (``git checkout``). The
    re-run removes what was put back (the archive keeps the same bytes) and finishes:
    nothing is left beside the converted files."""
    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    module, rev = flask_migrate_multidb(project, urls, monkeypatch)
    migrations = project / "migrations"
    (old_file,) = (migrations / "versions").glob("*.py")
    template = migrations / "script.py.mako"
    saved = {old_file: old_file.read_bytes(), template: template.read_bytes()}
    old = files(project)
    kill(project, urls, "os.rename", "", count)
    restored = []
    for path, data in saved.items():
        if not path.exists():
            path.write_bytes(data)
            restored.append(str(path.relative_to(migrations).parts[0]))
    assert restored == put_back

    code, output = rerun(module, urls)
    assert code == 0, output
    assert "it was finished from its journal" in " ".join(output.split())
    assert_converted(project, urls, rev, old)


def test_a_revision_put_back_by_hand_that_differs_stops_the_rerun(
    project: Path, make_url: MakeURL, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the old revision was moved away; the operator puts back a version of it
    that differs (edited since). The re-run cannot tell which to keep: it names the file
    and how to go on (exit 1), moves nothing, touches no database; once the file is moved
    out, a re-run finishes."""
    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    module, rev = flask_migrate_multidb(project, urls, monkeypatch)
    migrations = project / "migrations"
    (old_file,) = (migrations / "versions").glob("*.py")
    source = old_file.read_bytes()
    old = files(project)
    kill(project, urls, "os.rename", "", 4)
    old_file.write_bytes(source + b"# edited\n")
    before = files(project)
    staged = migrations / f"{ARCHIVE_NAME}.lockstep-tmp" / "versions" / old_file.name

    code, output = rerun(module, urls)
    assert code == 1
    assert output == (
        f"Error: Cannot finish the conversion that was stopped in {migrations}: {old_file} "
        f"was put back after it was moved to {staged}, and differs from it. Move "
        f"{old_file} out of the migrations folder (keep your changes elsewhere), then run "
        "adopt again: it finishes the conversion.\n"
    )
    assert files(project) == before
    assert version_rows(urls["default"]) == {rev}
    assert version_rows(urls["users"]) == {rev}

    old_file.unlink()  # the hint, followed
    code, output = rerun(module, urls)
    assert code == 0, output
    assert_converted(project, urls, rev, old)


def test_a_revision_put_back_over_its_converted_file_stops_the_rerun(
    project: Path, make_url: MakeURL, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed once every rename was done (the journal not yet removed); the operator puts
    the old revision back over the default bind's new file of the same name. The
    converted file is lost: the re-run says so, naming the file, and says to start over
    (exit 1); it moves nothing and touches no database."""
    urls = {"default": make_url(dialect), "users": make_url(dialect)}
    module, rev = flask_migrate_multidb(project, urls, monkeypatch)
    migrations = project / "migrations"
    (old_file,) = (migrations / "versions").glob("*.py")
    source = old_file.read_bytes()
    kill(project, urls, "os.remove", JOURNAL_NAME, 1)
    assert old_file.read_bytes() != source  # the default bind's converted file
    old_file.write_bytes(source)
    before = files(project)

    code, output = rerun(module, urls)
    assert code == 1
    assert output == (
        f"Error: Cannot finish the conversion that was stopped in {migrations}: {old_file} "
        "was put back by hand over the file converted from it (it is the same as "
        f"{migrations / ARCHIVE_NAME / 'versions' / old_file.name}, which the conversion "
        "moved away). Put the migrations folder back as it was before adopting, from the "
        f"backup (without {JOURNAL_NAME} and the folders adopt made), then run adopt again.\n"
    )
    assert files(project) == before
    assert version_rows(urls["default"]) == {rev}
    assert version_rows(urls["users"]) == {rev}
