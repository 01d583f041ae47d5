"""The revision graph cache: never stale, never required, and revision files stay unimported."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from conftest import MakeApp
from conftest import version_rows
from flask import Flask

from flask_alembic.revision_cache import CACHE_NAME
from flask_alembic.revision_cache import scan

MARKER = """
from pathlib import Path
Path(__file__).with_suffix(".imported").touch()
"""


def run(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=["db", *args])


def read_cache(path: Path) -> dict[str, Any]:
    """The cache file as one dict: each folder's "files" holds its line's text."""
    header, *lines = path.read_text().split("\n")
    content: dict[str, Any] = json.loads(header)
    for record in content["folders"].values():
        record["files"] = lines[record["files"]]
    return content


def write_cache(path: Path, content: dict[str, Any]) -> None:
    """Write what read_cache returned (changed or not) back in the file's layout."""
    lines = []
    folders = content.get("folders")
    if isinstance(folders, dict):
        for record in folders.values():
            if isinstance(record, dict) and isinstance(record.get("files"), str):
                lines.append(record["files"])
                record["files"] = len(lines) - 1
    path.write_text("\n".join([json.dumps(content), *lines]))


def add_marker(path: Path) -> None:
    """Make the revision file leave a trace when it is imported."""
    text = path.read_text()
    head, sep, tail = text.partition("\nimport sqlalchemy as sa\n")
    path.write_text(head + sep + MARKER + tail)


def test_listing_commands_import_no_revision(make_app: MakeApp, database_url: str) -> None:
    """status, current, heads, log, show and --plan read the graph without importing files
    (--plan lints, and so imports, the revisions it would run unless ALEMBIC_LINT is off)."""
    app, alembic = make_app(database_url, ALEMBIC_LINT="off")
    with app.app_context():
        first = alembic.revision("first")[0]
        second = alembic.revision("second", empty=True)[0]
    for script in (first, second):
        add_marker(Path(script.path))
    markers = [Path(s.path).with_suffix(".imported") for s in (first, second)]
    for args in (
        ("status",),
        ("current",),
        ("heads",),
        ("log",),
        ("show", "heads"),
        ("upgrade", "--plan"),
    ):
        result = run(app, *args)
        assert result.exit_code == 0, (args, result.output)
        assert not any(m.exists() for m in markers), args
    assert run(app, "upgrade", first.revision).exit_code == 0
    assert markers[0].exists()
    assert not markers[1].exists()  # only the migration that ran was imported
    assert run(app, "upgrade").exit_code == 0
    assert markers[1].exists()


def test_cache_notices_same_size_and_mtime(
    make_app: MakeApp, database_url: str, project: Path
) -> None:
    """Changing down_revision while keeping size and mtime is still seen."""
    app, alembic = make_app(database_url)
    with app.app_context():
        a = alembic.revision("a", rev_id="aaaa0001")[0]
        alembic.revision("b", empty=True, rev_id="bbbb0002")
        c = alembic.revision("c", empty=True, rev_id="cccc0003")[0]
    assert run(app, "heads").stdout.startswith("default: bbbb0002 -> cccc0003")
    assert (project / "migrations" / "__pycache__" / CACHE_NAME).is_file()

    path = Path(c.path)
    stat = path.stat()
    text = path.read_text()
    changed = text.replace("'bbbb0002'", "'aaaa0001'")
    assert len(changed) == len(text)
    path.write_text(changed)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    assert path.stat().st_mtime_ns == stat.st_mtime_ns

    result = run(app, "heads")
    assert "bbbb0002" in result.stdout
    assert f"{a.revision} -> cccc0003" in result.stdout
    assert len(result.stdout.splitlines()) == 2  # two heads now


def test_cache_file_is_valid_and_replaced(
    make_app: MakeApp, database_url: str, project: Path
) -> None:
    """The cache is one JSON file in __pycache__, rewritten when a revision changes."""
    app, alembic = make_app(database_url)
    with app.app_context():
        alembic.revision("a", rev_id="aaaa0001")
    cache = project / "migrations" / "__pycache__" / CACHE_NAME
    assert run(app, "heads").exit_code == 0
    content = read_cache(cache)
    assert content["format"] == 10
    ((folder, record),) = content["folders"].items()
    assert folder == str(project / "migrations")
    assert len(json.loads(record["files"])) == 1
    assert record["graph"]["heads"] == ["aaaa0001"]
    with app.app_context():
        alembic.revision("b", empty=True, rev_id="bbbb0002")
    assert run(app, "heads").exit_code == 0
    record = read_cache(cache)["folders"][folder]
    assert len(json.loads(record["files"])) == 2
    assert record["graph"]["heads"] == ["bbbb0002"]
    assert record["graph"]["ids"] == ["aaaa0001", "bbbb0002"]
    assert not [p for p in cache.parent.iterdir() if p.name.startswith(".flask_alembic.")]
    # Readable by whoever can read the migrations folder, not private to its writer.
    folder_mode = (project / "migrations").stat().st_mode & 0o666
    assert cache.stat().st_mode & 0o777 == folder_mode


def test_unwritable_cache(make_app: MakeApp, database_url: str, project: Path) -> None:
    """When the cache cannot be written, every command still works."""
    app, alembic = make_app(database_url)
    (project / "migrations" / "__pycache__").write_text("a file where a folder should be")
    with app.app_context():
        alembic.revision("a")
        alembic.upgrade()
        assert len(alembic.heads()) == 1
    assert run(app, "status").exit_code == 0
    assert len(version_rows(database_url)) == 1


def test_corrupt_cache_is_ignored(make_app: MakeApp, database_url: str, project: Path) -> None:
    """A damaged cache file is rebuilt, never trusted."""
    app, alembic = make_app(database_url)
    with app.app_context():
        alembic.revision("a", rev_id="aaaa0001")
    cache = project / "migrations" / "__pycache__" / CACHE_NAME
    assert run(app, "heads").exit_code == 0
    cache.write_text("{not json")
    assert "aaaa0001" in run(app, "heads").stdout
    assert read_cache(cache)["format"] == 10


def _no_graph(record: dict[str, Any], files: str) -> None:
    record["graph"] = None
    record["files"] = files


@pytest.mark.parametrize(
    "damage",
    [
        lambda content, record, name: content.update(folders=[]),
        lambda content, record, name: content["folders"].update(
            {k: [] for k in content["folders"]}
        ),
        lambda content, record, name: record.update(graph="junk"),
        lambda content, record, name: record["graph"].update(ids=[1]),
        lambda content, record, name: record["graph"].pop("heads"),
        lambda content, record, name: record.update(files=42),
        lambda content, record, name: _no_graph(record, "{not json"),
        lambda content, record, name: _no_graph(record, "[]"),
        lambda content, record, name: _no_graph(record, json.dumps({name: "junk"})),
        lambda content, record, name: _no_graph(record, json.dumps({name: [[], "h", None]})),
        lambda content, record, name: _no_graph(
            record, json.dumps({name: [json.loads(record["files"])[name][0], "h", [1, 2, 3, 4, 5]]})
        ),
        lambda content, record, name: _no_graph(
            record, json.dumps({name: [json.loads(record["files"])[name][0], "h", ["x", None]]})
        ),
    ],
)
def test_malformed_cache_is_ignored(
    make_app: MakeApp, project: Path, damage: Callable[[dict[str, Any], dict[str, Any], str], None]
) -> None:
    """Valid JSON of the wrong shape, even where the stat signatures match, is never believed.

    The cache is about files only, so SQLite alone stands for every database here.
    """
    database_url = f"sqlite:///{project / 'app.db'}"
    app, alembic = make_app(database_url)
    with app.app_context():
        path = Path(alembic.revision("a", rev_id="aaaa0001")[0].path)
    assert run(app, "heads").exit_code == 0
    cache = project / "migrations" / "__pycache__" / CACHE_NAME
    content = read_cache(cache)
    content["written_ns"] += 10**12  # so that the fresh file's signature is trusted
    damage(content, content["folders"][str(path.parent)], path.name)
    write_cache(cache, content)
    result = run(app, "heads")
    assert result.exit_code == 0, result.output
    assert "aaaa0001" in result.stdout
    with app.app_context():
        assert alembic.upgrade().ok
    assert version_rows(database_url) == {"aaaa0001"}


def test_bind_with_several_folders(make_app: MakeApp, database_url: str, project: Path) -> None:
    """Heads of a bind whose history moves between folders, answered from the cache."""
    more = project / "more"
    more.mkdir()
    app, alembic = make_app(database_url, ALEMBIC={"version_locations": str(more)})
    expected: list[str] = []
    for rev, folder in (("aaaa", None), ("bbbb", more), ("cccc", None), ("dddd", more)):
        with app.app_context():
            alembic.revision(rev, empty=True, path=folder, rev_id=rev)
        expected.append(rev)
        # Each upgrade must see the new head, wherever it was written.
        with app.app_context():
            applied = [step.revision for step in alembic.upgrade().applied]
        assert applied == [rev]
        assert version_rows(database_url) == {rev}
        result = run(app, "upgrade")
        assert result.exit_code == 0, result.output
        assert "Nothing to do" in result.output
    assert sorted(p.name for p in more.glob("*.py")) == ["bbbb_bbbb.py", "dddd_dddd.py"]
    with app.app_context():
        assert [script.revision for script in alembic.heads()] == ["dddd"]


def test_cache_can_be_turned_off(make_app: MakeApp, database_url: str, project: Path) -> None:
    """ALEMBIC_REVISION_CACHE = False loads revisions the plain Alembic way."""
    app, alembic = make_app(database_url, ALEMBIC_REVISION_CACHE=False)
    with app.app_context():
        script = alembic.revision("a")[0]
        assert type(script).__name__ == "Script"
    assert run(app, "heads").exit_code == 0
    assert not (project / "migrations" / "__pycache__" / CACHE_NAME).exists()


def test_dynamic_revision_file_is_imported(tmp_path: Path) -> None:
    """A file whose identifiers are not literals is left for a real import."""
    folder = tmp_path / "versions"
    folder.mkdir()
    (folder / "static.py").write_text('"""Doc."""\nrevision = "aaaa"\ndown_revision = None\n')
    (folder / "dynamic.py").write_text('revision = "b" + "bbb"\ndown_revision = "aaaa"\n')
    (folder / "twice.py").write_text('revision = "cccc"\nrevision = "dddd"\ndown_revision = None\n')
    (folder / "typed.py").write_text(
        'revision: str = "eeee"\ndown_revision: str | None = ("aaaa", "cccc")\n'
        'branch_labels = ("x",)\ndepends_on = ["aaaa"]\n'
    )
    (folder / "__init__.py").write_text("")
    (folder / "notes.txt").write_text("")
    files = {Path(f.path).name: f.data for f in scan([folder], tmp_path / "cache").files()}
    assert set(files) == {"dynamic.py", "static.py", "twice.py", "typed.py"}
    assert files["dynamic.py"] is None
    assert files["twice.py"] is None
    static = files["static.py"]
    assert static is not None
    assert static.doc == "Doc."
    typed = files["typed.py"]
    assert typed is not None
    assert typed.down_revision == ("aaaa", "cccc")
    assert typed.branch_labels == ("x",)
    assert typed.depends_on == ("aaaa",)
    # The second scan serves the same answers from the cache file.
    again = {Path(f.path).name: f.data for f in scan([folder], tmp_path / "cache").files()}
    assert again == files


def test_noop_upgrade_and_status_skip_alembic(
    make_app: MakeApp, database_url: str, project: Path
) -> None:
    """With nothing to do, upgrade and status answer without importing Alembic at all."""
    import subprocess
    import sys
    import textwrap

    app, alembic = make_app(database_url)
    with app.app_context():
        alembic.revision("a")
        alembic.upgrade()
    script = textwrap.dedent(
        f"""
        import sys
        import sqlalchemy as sa
        from flask import Flask
        from flask_alembic import Alembic

        app = Flask("x", root_path={str(project)!r})
        alembic = Alembic(app, engines=sa.create_engine({database_url!r}), metadatas=sa.MetaData())
        with app.app_context():
            result = alembic.upgrade()
            assert not result.applied and result.plan.unchanged == ("default",)
            assert [s.state for s in alembic.status()] == ["up to date"]
        print("alembic" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_stat_trust_and_ctime(tmp_path: Path) -> None:
    """Unchanged files are served from the cache; an edit keeping size and mtime is re-read."""
    folder = tmp_path / "versions"
    folder.mkdir()
    path = folder / "a.py"
    path.write_text('revision = "aaaa"\ndown_revision = "bbbb"\n')
    cache_dir = tmp_path / "cache"
    scan([folder], cache_dir)
    cache = cache_dir / CACHE_NAME
    content = read_cache(cache)
    # Pretend the cache was written long after the file: its entry is now trusted as is.
    content["written_ns"] += 10**12
    record = content["folders"][str(folder)]
    files = json.loads(record["files"])
    (entry,) = files.values()
    entry[2][0] = "poisoned"  # [stat signature, hash, [revision, ...]]
    record["files"] = json.dumps(files)
    record["graph"]["heads"] = ["poisoned"]
    write_cache(cache, content)
    revisions = scan([folder], cache_dir)
    assert revisions.graphs()[str(folder)].heads == ["poisoned"]  # type: ignore[union-attr]
    (served,) = revisions.files()
    assert served.data is not None
    assert served.data.revision == "poisoned"  # proof that the stat signature was trusted

    stat = path.stat()
    path.write_text('revision = "aaaa"\ndown_revision = "cccc"\n')  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime
    revisions = scan([folder], cache_dir)
    assert revisions.graphs()[str(folder)].heads == ["aaaa"]  # type: ignore[union-attr]
    (fresh,) = revisions.files()
    assert fresh.data is not None
    assert fresh.data.revision == "aaaa"
    assert fresh.data.down_revision == ("cccc",)


def test_racy_signature_is_not_trusted(tmp_path: Path) -> None:
    """A stat signature that matches is not trusted when the file changed within 2 s of the
    cache being written.

    Guards the "settled for 2 s" ctime checks of revision_cache.py: the folder check
    (``newest < trust_before`` in ``_scan``) and the per-file one (``stat.st_ctime_ns <
    trust_before`` in ``_check_files``). Without either, the poisoned entry below is served.
    """
    folder = tmp_path / "versions"
    folder.mkdir()
    (folder / "a.py").write_text('revision = "aaaa"\ndown_revision = None\n')
    cache_dir = tmp_path / "cache"
    scan([folder], cache_dir)
    cache = cache_dir / CACHE_NAME
    content = read_cache(cache)
    # The cache says what an earlier content of the file held, with the file's current
    # signature: as if the file changed in the same instant the cache was written.
    content["written_ns"] = (folder / "a.py").stat().st_ctime_ns
    record = content["folders"][str(folder)]
    files = json.loads(record["files"])
    (entry,) = files.values()
    entry[1] = "0" * len(entry[1])  # [stat signature, hash, [revision, ...]]: another content
    entry[2][0] = "poisoned"
    record["files"] = json.dumps(files)
    record["graph"]["heads"] = ["poisoned"]
    record["graph"]["ids"] = ["poisoned"]

    # The folder's listing matches: only the folder's ctime check refuses it.
    write_cache(cache, json.loads(json.dumps(content)))
    revisions = scan([folder], cache_dir)
    assert revisions.graphs()[str(folder)].heads == ["aaaa"]  # type: ignore[union-attr]
    assert [f.data.revision for f in revisions.files() if f.data is not None] == ["aaaa"]

    # The folder's listing differs: each file is checked, and the file's ctime check
    # refuses it.
    record["fingerprint"] = "changed"
    write_cache(cache, content)
    revisions = scan([folder], cache_dir)
    assert revisions.graphs()[str(folder)].heads == ["aaaa"]  # type: ignore[union-attr]
    assert [f.data.revision for f in revisions.files() if f.data is not None] == ["aaaa"]


def test_recent_files_become_trusted(tmp_path: Path) -> None:
    """Files written just before the cache are re-hashed until the cache is rewritten later."""
    folder = tmp_path / "versions"
    folder.mkdir()
    path = folder / "a.py"
    path.write_text('revision = "aaaa"\ndown_revision = None\n')
    cache_dir = tmp_path / "cache"
    scan([folder], cache_dir)
    cache = cache_dir / CACHE_NAME
    first = read_cache(cache)["written_ns"]
    scan([folder], cache_dir)
    assert read_cache(cache)["written_ns"] == first  # too recent: nothing new
    # Two seconds later (simulated by ageing the file), the next scan settles the entry.
    stat = path.stat()
    content = read_cache(cache)
    content["written_ns"] = stat.st_ctime_ns + 1  # the cache saw the file just after it changed
    write_cache(cache, content)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    import time

    time.sleep(2.1)
    scan([folder], cache_dir)
    assert read_cache(cache)["written_ns"] > content["written_ns"] + 2 * 10**9


def test_cache_replaced_while_in_use(tmp_path: Path) -> None:
    """A trusted folder's entries are read later only from the very file the scan read."""
    folder = tmp_path / "versions"
    folder.mkdir()
    (folder / "a.py").write_text('revision = "aaaa"\ndown_revision = None\n')
    cache_dir = tmp_path / "cache"
    scan([folder], cache_dir)
    cache = cache_dir / CACHE_NAME
    content = read_cache(cache)
    content["written_ns"] += 10**12  # the file is old enough to be trusted
    write_cache(cache, content)
    revisions = scan([folder], cache_dir)  # trusts the folder; its entries are not read yet
    content = read_cache(cache)
    record = content["folders"][str(folder)]
    record["files"] = record["files"].replace('"aaaa"', '"poisoned"')
    write_cache(cache, content)  # another process replaced the cache meanwhile
    (item,) = revisions.files()
    assert item.data is not None
    assert item.data.revision == "aaaa"


def _age(cache: Path) -> None:
    """Make the cache look written long after every file (so its signatures are trusted)."""
    content = read_cache(cache)
    content["written_ns"] += 10**12
    write_cache(cache, content)


def _poison(cache: Path, folder: Path, *, entries: bool = True) -> None:
    """Make the cache say what no file holds, so serving it proves it was trusted: the
    folder's graph, and unless ``entries`` is false each file's entry."""
    content = read_cache(cache)
    record = content["folders"][str(folder)]
    if entries:
        files = json.loads(record["files"])
        for entry in files.values():
            entry[2][0] = "poisoned"  # [stat signature, hash, [revision, ...]]
        record["files"] = json.dumps(files)
    record["graph"]["heads"] = ["poisoned"]
    write_cache(cache, content)


def test_folders_check_trusts_the_folder(tmp_path: Path) -> None:
    """With trust_folders, an unchanged folder whose head's file is unchanged is served
    from the cache without a look at its other files, even after one of them is written
    over in place (the documented gap); the default check sees it."""
    folder = tmp_path / "versions"
    folder.mkdir()
    path = folder / "a.py"
    path.write_text('revision = "aaaa"\ndown_revision = None\n')
    (folder / "b.py").write_text('revision = "bbbb"\ndown_revision = "aaaa"\n')
    cache_dir = tmp_path / "cache"
    cache = cache_dir / CACHE_NAME
    scan([folder], cache_dir, trust_folders=True)
    record = read_cache(cache)["folders"][str(folder)]
    assert isinstance(record["folder"], list)
    assert [file for file, _ in record["head_files"]] == ["b.py"]
    _age(cache)
    _poison(cache, folder, entries=False)
    path.write_text('revision = "aaaa"\ndown_revision = "zzzz"\n')  # not a head: unseen
    revisions = scan([folder], cache_dir, trust_folders=True)
    assert revisions.trusted
    assert revisions.graphs()[str(folder)].heads == ["poisoned"]  # type: ignore[union-attr]
    assert [(Path(f.path).name, f.data.down_revision) for f in revisions.files() if f.data] == [
        ("a.py", ()),  # as cached, not as edited
        ("b.py", ("aaaa",)),
    ]
    # The default check looks at every file: the edit is seen.
    revisions = scan([folder], cache_dir)
    assert not revisions.trusted
    assert revisions.graphs()[str(folder)].heads == ["bbbb"]  # type: ignore[union-attr]
    first = revisions.files()[0]
    assert first.data is not None
    assert first.data.down_revision == ("zzzz",)


@pytest.mark.parametrize("how", ["edit", "touch"])
def test_folders_check_looks_at_the_heads_files(tmp_path: Path, how: str) -> None:
    """A head's file written over in place (the usual edit of a new revision) makes the
    folder untrusted: every file is checked again."""
    folder = tmp_path / "versions"
    folder.mkdir()
    (folder / "a.py").write_text('revision = "aaaa"\ndown_revision = None\n')
    head = folder / "b.py"
    head.write_text('revision = "bbbb"\ndown_revision = "aaaa"\n')
    cache_dir = tmp_path / "cache"
    cache = cache_dir / CACHE_NAME
    scan([folder], cache_dir, trust_folders=True)
    _age(cache)
    _poison(cache, folder, entries=False)
    assert scan([folder], cache_dir, trust_folders=True).trusted
    if how == "edit":
        head.write_text('revision = "cccc"\ndown_revision = "aaaa"\n')
    else:
        os.utime(head, ns=(time.time_ns(), time.time_ns()))
    revisions = scan([folder], cache_dir, trust_folders=True)
    assert not revisions.trusted
    expected = {"edit": ["cccc"], "touch": ["bbbb"]}[how]
    assert revisions.graphs()[str(folder)].heads == expected  # type: ignore[union-attr]


@pytest.mark.parametrize("change", ["add", "remove", "rename"])
def test_folders_check_notices_listing_changes(tmp_path: Path, change: str) -> None:
    """Adding, removing or renaming a file changes the folder's signature: every file is
    checked again."""
    folder = tmp_path / "versions"
    folder.mkdir()
    (folder / "a.py").write_text('revision = "aaaa"\ndown_revision = None\n')
    (folder / "b.py").write_text('revision = "bbbb"\ndown_revision = "aaaa"\n')
    cache_dir = tmp_path / "cache"
    cache = cache_dir / CACHE_NAME
    scan([folder], cache_dir, trust_folders=True)
    _age(cache)
    _poison(cache, folder, entries=False)
    assert scan([folder], cache_dir, trust_folders=True).graphs()[str(folder)].heads == [  # type: ignore[union-attr]
        "poisoned"
    ]
    expected = {"add": ["cccc"], "remove": ["aaaa"], "rename": ["bbbb"]}[change]
    if change == "add":
        (folder / "c.py").write_text('revision = "cccc"\ndown_revision = "bbbb"\n')
    elif change == "remove":
        (folder / "b.py").unlink()
    else:
        (folder / "b.py").rename(folder / "b2.py")
    revisions = scan([folder], cache_dir, trust_folders=True)
    assert revisions.graphs()[str(folder)].heads == expected  # type: ignore[union-attr]
    assert [Path(f.path).name for f in revisions.files()] == sorted(
        p.name for p in folder.iterdir()
    )


def test_folders_check_cache_replaced_while_in_use(tmp_path: Path) -> None:
    """A folder trusted by its signature whose cache file is replaced before its entries
    are read is listed and checked file by file."""
    folder = tmp_path / "versions"
    folder.mkdir()
    (folder / "a.py").write_text('revision = "aaaa"\ndown_revision = None\n')
    cache_dir = tmp_path / "cache"
    cache = cache_dir / CACHE_NAME
    scan([folder], cache_dir, trust_folders=True)
    _age(cache)
    revisions = scan([folder], cache_dir, trust_folders=True)
    _poison(cache, folder)  # another process replaced the cache meanwhile
    (item,) = revisions.files()
    assert item.data is not None
    assert item.data.revision == "aaaa"


def test_folders_check_setting(make_app: MakeApp, database_url: str, project: Path) -> None:
    """Every value of ALEMBIC_REVISION_CACHE_CHECK records each folder's signature and its
    heads' files, so that any command leaves a cache the next no-op can trust; a value
    other than "heads", "files" or "folders" is refused with the values it takes."""
    cache = project / "migrations" / "__pycache__" / CACHE_NAME
    app, alembic = make_app(database_url, ALEMBIC_REVISION_CACHE_CHECK="files")
    with app.app_context():
        alembic.revision("a", rev_id="aaaa0001")
    assert run(app, "heads").exit_code == 0
    (record,) = read_cache(cache)["folders"].values()
    assert type(record["folder"]) is list
    assert [Path(file).name for file, _ in record["head_files"]] == ["aaaa0001_a.py"]
    app, _ = make_app(database_url)
    assert run(app, "heads").exit_code == 0
    app, _ = make_app(database_url, ALEMBIC_REVISION_CACHE_CHECK="folder")
    result = run(app, "status")
    assert result.exit_code == 1
    assert (
        "'ALEMBIC_REVISION_CACHE_CHECK' must be 'heads', 'files' or 'folders', got 'folder'."
        in result.output
    )


def test_distinct_ids_are_worked_out_when_the_cache_is_written(tmp_path: Path) -> None:
    """Whether every id is distinct (ignoring case) across the folders is worked out when
    the cache is written, read back from it while nothing changed, and unknown without a
    cache."""
    one, two = tmp_path / "one", tmp_path / "two"
    for folder in (one, two):
        folder.mkdir()
    (one / "a.py").write_text('revision = "aaaa"\ndown_revision = None\n')
    (two / "b.py").write_text('revision = "bbbb"\ndown_revision = None\n')
    cache_dir = tmp_path / "cache"
    cache = cache_dir / CACHE_NAME
    assert scan([one, two], cache_dir).distinct is True
    assert read_cache(cache)["distinct"] is True
    written = read_cache(cache)["written_ns"]
    assert scan([one, two], cache_dir).distinct is True  # read back: nothing written
    assert read_cache(cache)["written_ns"] == written
    (two / "c.py").write_text('revision = "AAAA"\ndown_revision = "bbbb"\n')
    assert scan([one, two], cache_dir).distinct is False
    assert scan([one, two], cache_dir).distinct is False
    assert scan([one, two], None).distinct is None


def test_cache_learns_whether_ids_are_distinct(tmp_path: Path) -> None:
    """A cache written without the distinct flag (an earlier version) is written again
    once with it; a folder whose graph is unknown never makes it rewrite the cache."""
    folder = tmp_path / "versions"
    folder.mkdir()
    (folder / "a.py").write_text('revision = "aaaa"\ndown_revision = None\n')
    cache_dir = tmp_path / "cache"
    cache = cache_dir / CACHE_NAME
    scan([folder], cache_dir)
    content = read_cache(cache)
    del content["distinct"]
    write_cache(cache, content)
    assert scan([folder], cache_dir).distinct is True
    assert read_cache(cache)["distinct"] is True

    (folder / "b.py").write_text('revision = "bb" + "bb"\ndown_revision = "aaaa"\n')
    assert scan([folder], cache_dir).distinct is None
    written = read_cache(cache)["written_ns"]
    assert scan([folder], cache_dir).distinct is None
    assert read_cache(cache)["written_ns"] == written


def _chain(alembic: Any, app: Flask, *names: str) -> list[Path]:
    """Empty revisions ``names`` in a chain, each id the name repeated ("aaaa0001"...)."""
    paths = []
    with app.app_context():
        for number, name in enumerate(names, start=1):
            script = alembic.revision(name, empty=True, rev_id=f"{name * 4}000{number}")[0]
            paths.append(Path(script.path))
    return paths


def _rewrite(path: Path, old: str, new: str) -> None:
    """Write the file over in place (same name, same inode): the folder does not change."""
    text = path.read_text()
    assert old in text
    with path.open("r+") as handle:
        handle.truncate()
        handle.write(text.replace(old, new))


@pytest.mark.parametrize("check", ["heads", "files"])
def test_noop_trusts_unchanged_folder_for_nothing_to_do_only(
    make_app: MakeApp, database_url: str, project: Path, check: str
) -> None:
    """The default check answers a no-op from an unchanged folder without reading a file
    that is not a head: a non-head file written over in place is not seen there (the
    documented gap); "files" sees it."""
    app, alembic = make_app(database_url, ALEMBIC_REVISION_CACHE_CHECK=check)
    _, b, _ = _chain(alembic, app, "a", "b", "c")
    assert run(app, "upgrade").exit_code == 0
    cache = project / "migrations" / "__pycache__" / CACHE_NAME
    _age(cache)
    # b no longer follows a: a becomes a second head, which only a look at b shows.
    _rewrite(b, "down_revision: str | Sequence[str] | None = 'aaaa0001'", "down_revision = None")
    status, upgrade = run(app, "status"), run(app, "upgrade")
    assert status.exit_code == 0, status.output
    assert upgrade.exit_code == 0, upgrade.output
    if check == "heads":
        assert "up to date" in status.output
        assert "Nothing to do" in upgrade.output
        assert version_rows(database_url) == {"cccc0003"}
    else:
        assert "pending" in status.output
        assert version_rows(database_url) == {"aaaa0001", "cccc0003"}


def test_noop_sees_a_head_written_over_in_place(
    make_app: MakeApp, database_url: str, project: Path
) -> None:
    """A head's file written over in place (the usual edit of a new revision) is seen by
    the default check: the no-op upgrade reports the unknown revision."""
    app, alembic = make_app(database_url)
    _, b = _chain(alembic, app, "a", "b")
    assert run(app, "upgrade").exit_code == 0
    _age(project / "migrations" / "__pycache__" / CACHE_NAME)
    _rewrite(b, "'bbbb0002'", "'bbbb0009'")
    result = run(app, "upgrade")
    assert result.exit_code == 1, result.output
    assert "bbbb0002" in result.output
    assert version_rows(database_url) == {"bbbb0002"}


def test_noop_check_plans_from_every_file(
    make_app: MakeApp, database_url: str, project: Path
) -> None:
    """When a trusted folder says there is something to do, the plan is made from every
    file checked: here c, written over in place, now follows a, so b stays a head."""
    app, alembic = make_app(database_url)
    _, _, c, _ = _chain(alembic, app, "a", "b", "c", "d")
    assert run(app, "upgrade", "bbbb0002").exit_code == 0
    _age(project / "migrations" / "__pycache__" / CACHE_NAME)
    _rewrite(
        c, "down_revision: str | Sequence[str] | None = 'bbbb0002'", "down_revision = 'aaaa0001'"
    )
    result = run(app, "upgrade", "heads")
    assert result.exit_code == 0, result.output
    assert version_rows(database_url) == {"bbbb0002", "dddd0004"}
