"""The SQLite migration lock: an exclusive ``flock`` on a file beside the database.

The file is named after the database file's inode and the version table, so every
spelling of the path (relative, symlinked, hard-linked) and every container sharing the
volume finds the same one. It is never written through a link or into anything but a
regular file of its own, and its holder removes it on release. Its two lines say who
holds it (process id and host) and what it guards (bind and version table), for the
readers of ``status``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import DatabaseError
from .errors import LockTimeoutError
from .registry import Bind

__all__ = ["POLL", "file_lock", "holder", "sqlite_lock_path", "sqlite_migration"]

#: Seconds between two attempts at a lock held by another process.
POLL = 0.05


def sqlite_lock_path(database: str, schema: str | None, table: str) -> Path:
    """The lock file of version table ``table`` in the SQLite file ``database``.

    It lives beside the database, where SQLite writes its journal, so every process
    reaching the file (from another container sharing the volume, too) finds it. Its
    name comes from the file's inode, not its name, so symlinks, relative paths and hard
    links share it, and from the version table, so two version tables in one file have a
    lock each. The device is left out: it differs between hosts mounting one volume.
    """
    return _lock_path(os.path.realpath(database), schema, table)


def _lock_path(real: str, schema: str | None, table: str) -> Path:
    """:func:`sqlite_lock_path` of a database path already resolved (``realpath``)."""
    return Path(real).parent / _lock_file_name(os.stat(real).st_ino, schema, table)


def _lock_file_name(inode: int, schema: str | None, table: str) -> str:
    key = f"{inode}|{(schema or 'main').lower()}|{table.lower()}"
    return f"flask_alembic-{hashlib.sha256(key.encode()).hexdigest()[:16]}.lock"


def sqlite_migration(database: str) -> tuple[str, str] | None:
    """A migration another process runs now on the SQLite file ``database``, of any version
    table: what it migrates (``"bind 'x' (version table t)"``) and who holds its lock.

    Each lock file held is asked what it guards, and counts only if its name is the one
    that version table of this file has. Nothing is waited for or kept locked.
    """
    real = os.path.realpath(database)
    try:
        inode = os.stat(real).st_ino
        candidates = sorted(Path(real).parent.glob("flask_alembic-*.lock"))
    except OSError:
        return None
    for path in candidates:
        found = _held(path)
        if found is None:
            continue
        words, guarded = found
        if guarded is None:
            continue
        bind, schema, table = guarded
        if _lock_file_name(inode, schema, table) == path.name:
            shown = table if schema is None else f"{schema}.{table}"
            return f"bind {bind!r} (version table {shown})", _describe_holder(words, path)
    return None


def holder(database: str, schema: str | None, table: str, *, resolved: bool = False) -> str | None:
    """Who holds the lock of version table ``table`` of the SQLite file ``database``, when
    another process does; else ``None``. Asked with a shared, non-blocking ``flock``,
    released at once.

    :param resolved: ``database`` is a ``realpath`` already (a database identity's).
    """
    try:
        real = database if resolved else os.path.realpath(database)
        path = _lock_path(real, schema, table)
    except OSError:
        return None
    found = _held(path)
    return None if found is None else _describe_holder(found[0], path)


def _held(path: Path) -> tuple[list[str], tuple[str, str | None, str] | None] | None:
    """What the lock file at ``path`` says, if another process holds it (else ``None``)."""
    try:
        fd = _open_existing(path, os.O_RDONLY)
    except (OSError, _NotALockFile):  # none: nobody holds it; or no usable one (see upgrade)
        return None
    try:
        if _try_flock(fd, shared=True):
            _unflock(fd)
            return None
        return _read_lock_file(fd)
    finally:
        os.close(fd)


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# Not on Windows, where there are neither symlinks an unprivileged user can plant nor FIFOs.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


@contextmanager
def file_lock(
    bind: Bind, database: str, timeout: float, notify: Callable[[], None]
) -> Iterator[None]:
    # Not the database file itself: opening and closing it would drop SQLite's own POSIX
    # locks. The lock file is removed by its holder on release, while still holding it;
    # so a process that locks a file must check that it is still the one at ``path``.
    try:
        path = sqlite_lock_path(database, bind.version_table_schema, bind.version_table)
    except OSError as exc:  # the file went away since its identity was read
        raise bind.database_error("find the file of", exc, "Check the database's path.") from None
    deadline = time.monotonic() + timeout
    fd, writable = _open_lock_file(bind, path)
    try:
        while True:
            if _try_flock(fd):
                if _still_at(fd, path):
                    break
                os.close(fd)  # a released lock's file: try the one there now
                fd = -1  # so that a failing open below does not close it twice
                fd, writable = _open_lock_file(bind, path)
                continue
            if time.monotonic() >= deadline:
                raise LockTimeoutError.for_bind(bind.name, timeout, _file_holder(fd, path))
            notify()
            time.sleep(POLL)
        if writable:
            # The second line says what the lock guards, for readers of the other version
            # tables of the file (see sqlite_migration).
            guarded = {
                "bind": bind.name,
                "schema": bind.version_table_schema,
                "table": bind.version_table,
            }
            if os.fstat(fd).st_size:
                # Only a file left with content: on ext4, truncating a file to zero makes
                # its close wait for its data to be written out (auto_da_alloc), about
                # 0.2 ms a bind when idle and several when the disk is busy.
                os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()} {_host()}\n{json.dumps(guarded)}\n".encode())
        try:
            yield
        finally:
            with contextlib.suppress(OSError):  # a folder that is not writable keeps it
                os.unlink(path)
            _unflock(fd)
    finally:
        if fd >= 0:
            os.close(fd)


def _open_lock_file(bind: Bind, path: Path) -> tuple[int, bool]:
    """Open (or create) the lock file: its descriptor, and whether it could be written.

    A file left by another user may be read-only to this one; ``flock`` works on it all
    the same. A new file gets the permissions its folder gives (group-writable in a
    group-writable folder), whatever the umask. Anything but a regular file of its own
    (planted by whoever can write to the folder) is refused: see :func:`_open_existing`.
    """
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
        except FileExistsError:
            pass
        except OSError as exc:
            raise _lock_file_error(bind, path, exc, create=True) from None
        else:
            mode = 0o666 & stat.S_IMODE(os.stat(path.parent).st_mode)
            with contextlib.suppress(OSError):
                # On the descriptor: the path may be a symlink by now.
                if hasattr(os, "fchmod"):
                    os.fchmod(fd, mode)
                else:  # pragma: no cover - Windows before Python 3.13
                    os.chmod(path, mode)
            return fd, True
        for flags, writable in ((os.O_RDWR, True), (os.O_RDONLY, False)):
            try:
                return _open_existing(path, flags), writable
            except FileNotFoundError:
                break  # released and removed in between: create it again
            except PermissionError as exc:
                if not writable:
                    raise _lock_file_error(bind, path, exc, create=False) from None
            except OSError as exc:
                raise _lock_file_error(bind, path, exc, create=False) from None
            except _NotALockFile as exc:
                raise _not_a_lock_file_error(bind, path, exc.kind) from None


class _NotALockFile(Exception):
    """Something other than a regular file of its own is at a lock file's path."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        #: What it is: ``"a symbolic link"``, ``"a directory"``...
        self.kind = kind


def _open_existing(path: Path, flags: int) -> int:
    """Open an existing lock file, refusing anything a lock file is not.

    The lock file is truncated and written, so a symlink is not followed (it could point
    to any file the user can write), and a file with other hard links is refused (it is
    another file's data). ``O_NONBLOCK`` keeps a FIFO from blocking the open; it changes
    nothing for a regular file. Any owner is accepted: a stale lock file of another
    user is the usual case, and it can only be written where its mode allows.
    """
    try:
        fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK | _CLOEXEC)
    except (FileNotFoundError, PermissionError):
        raise
    except OSError:
        # ELOOP (a symlink), EISDIR, ENXIO (a socket)...: say what is there, if odd.
        try:
            kind = _odd_kind(os.lstat(path))
        except OSError:
            kind = None
        if kind is not None:
            raise _NotALockFile(kind) from None
        raise
    kind = _odd_kind(os.fstat(fd))
    if kind is not None:
        os.close(fd)
        raise _NotALockFile(kind)
    return fd


def _odd_kind(info: os.stat_result) -> str | None:
    """What a file that cannot be a lock file is (``None``: a regular file of its own)."""
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return f"a file with {info.st_nlink} hard links" if info.st_nlink > 1 else None
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"  # pragma: no cover - no other kinds on Linux


def _still_at(fd: int, path: Path) -> bool:
    """Whether ``path`` is still the file ``fd`` has open (its holder may have removed it)."""
    try:
        here = os.lstat(path)  # a symlink to the file is not the file
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)


def _host() -> str:
    return os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "")


def _read_lock_file(fd: int) -> tuple[list[str], tuple[str, str | None, str] | None]:
    """What a lock file's holder wrote: its process id and host (as words), and the bind,
    schema and version table it guards (``None`` if not said, by an earlier version)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        first, _, rest = os.read(fd, 4096).decode(errors="replace").partition("\n")
    except OSError:
        return [], None
    try:
        said = json.loads(rest)
        bind, schema, table = said["bind"], said["schema"], said["table"]
    except (ValueError, TypeError, KeyError):
        return first.split(), None
    if isinstance(bind, str) and isinstance(schema, str | None) and isinstance(table, str):
        return first.split(), (bind, schema, table)
    return first.split(), None


def _file_holder(fd: int, path: Path) -> str:
    """The holder a lock file names: process id and host, as its holder wrote them."""
    words, _ = _read_lock_file(fd)
    return _describe_holder(words, path)


def _describe_holder(words: list[str], path: Path) -> str:
    if not words:
        return f"held by a process (lock file {path})"
    host = f" on host {words[1]}" if len(words) > 1 and words[1] != _host() else ""
    return f"held by process {words[0]}{host} (lock file {path})"


def _lock_file_error(bind: Bind, path: Path, exc: OSError, *, create: bool) -> DatabaseError:
    reason = exc.strerror or str(exc)
    if create:
        return DatabaseError(
            f"Cannot create the migration lock file {path} of bind {bind.name!r}: {reason}.",
            bind=bind.name,
            path=str(path),
            hint=(
                f"Give the user running the migration write access to {path.parent}, where "
                "the database is (SQLite writes its journal there too)."
            ),
        )
    return DatabaseError(
        f"Cannot open the migration lock file {path} of bind {bind.name!r}: {reason}.",
        bind=bind.name,
        path=str(path),
        hint=(
            "Remove it once no other user's migration is running (it is left by an earlier "
            "run, perhaps as another user), or give the user running the migration read "
            "access to it."
        ),
    )


def _not_a_lock_file_error(bind: Bind, path: Path, kind: str) -> DatabaseError:
    return DatabaseError(
        f"Cannot use the migration lock file {path} of bind {bind.name!r}: it is {kind}.",
        bind=bind.name,
        path=str(path),
        hint=(
            "Remove it: a lock file is a regular file of its own, which Flask-Alembic creates "
            "and removes, and nothing is written through a link or into another kind of file."
        ),
    )


def _try_flock(fd: int, *, shared: bool = False) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unflock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
        return
    fcntl.flock(fd, fcntl.LOCK_UN)
