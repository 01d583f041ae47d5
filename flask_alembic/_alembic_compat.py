"""Every use of Alembic internals, in one place.

Flask-Alembic keeps one script directory for all binds but runs each bind as its own
history. Alembic has no public API for "the part of a revision map that belongs to one
database", so this module builds such views from private attributes. Keep the list of
what is touched here short and tested against the oldest and newest supported Alembic.
"""

from __future__ import annotations

import copy
import os
import sys
import threading
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import MutableMapping
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FunctionType
from types import ModuleType
from typing import Any
from typing import TYPE_CHECKING

from alembic.runtime.migration import MigrationStep
from alembic.runtime.migration import RevisionStep
from alembic.runtime.migration import StampStep
from alembic.script import Script
from alembic.script import ScriptDirectory
from alembic.script.revision import Revision
from alembic.script.revision import RevisionMap
from alembic.util import CommandError
from alembic.util import load_python_file
from alembic.util import to_tuple
from alembic.util import warn
from alembic.util.langhelpers import ModuleClsProxy

from .errors import ScriptDirectoryError
from .revision_cache import CachedRevision
from .revision_cache import is_foreign
from .revision_cache import non_string_revision
from .revision_cache import RevisionFile

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationContext

__all__ = [
    "LazyScript",
    "all_scripts",
    "bind_script_directory",
    "check_revision_files",
    "failing_frame",
    "forget_check",
    "iter_scripts",
    "own_branch_labels",
    "recording_operations",
    "release_checked",
    "release_module",
    "resolved_dependencies",
    "revision_file_error",
    "revision_steps",
    "stamp_steps",
    "thread_safe_proxies",
    "uncached_version_writes",
    "use_revision_files",
]


class LazyScript(Script):
    """A ``Script`` built from cached data; its module is imported on first use.

    Listing, planning and reporting need only ids, parents and docstrings; only the
    migrations that actually run need their code.
    """

    def __init__(self, data: CachedRevision, path: str) -> None:
        # A list, so the per-bind copies of this script share one import.
        self._module: list[ModuleType] = []
        # The file's stat values when its module was imported, and when it was imported
        # to be checked and let go of (see :func:`release_checked`): shared by the copies
        # likewise, whichever of them imported it. The next import must find that file.
        self._imported: list[tuple[int, ...]] = []
        self._checked: list[tuple[int, ...]] = []
        #: Whether its top level may run again (``CachedRevision.plain``).
        self.plain = data.plain
        #: Its function written for a lockstep history (``CachedRevision.lockstep``).
        self.lockstep = data.lockstep
        self.path = str(path)
        # Stripped when read: the cached docstring is kept anyway, a stripped copy of each
        # would only add to it.
        self._doc = data.doc
        Revision.__init__(
            self,
            data.revision,
            data.down_revision,
            dependencies=data.depends_on,
            branch_labels=data.branch_labels,
        )

    @property
    def module(self) -> ModuleType:  # type: ignore[override]
        if not self._module:
            path = Path(self.path)
            signature = _file_signature(self.path)  # before the import: a change during it counts
            checked = self._checked[:]
            self._checked.clear()
            if checked and checked[0] != signature:
                raise CommandError(
                    f"Revision file {self.path} changed while it was in use; run the command again."
                )
            try:
                module = load_python_file(str(path.parent), path.name)
            except Exception as exc:
                raise revision_file_error(exc, self.path) from exc
            if getattr(module, "revision", None) != self.revision:
                raise CommandError(
                    f"Revision file {self.path} changed while it was in use; run the command again."
                )
            self._module.append(module)
            self._imported[:] = [signature]
        return self._module[0]

    @property
    def longdoc(self) -> str:
        return self._doc.strip()


def use_revision_files(script: ScriptDirectory, files: Sequence[RevisionFile]) -> None:
    """Make ``script`` load its revisions from ``files``: cached data where there is some."""

    script.revision_map = RevisionMap(lambda: _load_files(script, files))


def check_revision_files(script: ScriptDirectory) -> None:
    """Make ``script`` load its revisions the plain Alembic way, checked as the cache does,
    leaving out the files of other tools (``env.py``...) as the cache does."""
    script.revision_map = RevisionMap(lambda: map(_checked, _load_revisions(script)))


def _load_revisions(script: ScriptDirectory) -> Iterator[Script]:
    """``ScriptDirectory._load_revisions``, without importing the files that are no
    revisions (:func:`~flask_alembic.revision_cache.is_foreign`)."""
    seen: set[Path] = set()
    for folder in script._version_locations:
        if not folder.exists():
            continue
        for file_path in Script._list_py_dir(script, folder):
            real_path = Path(file_path).resolve()
            if real_path in seen:
                warn(
                    f"File {real_path} loaded twice! ignoring. "
                    "Please ensure version_locations is unique."
                )
                continue
            seen.add(real_path)
            if real_path.suffix == ".py" and is_foreign(real_path):
                continue
            loaded = Script._from_path(script, real_path)
            if loaded is not None:
                yield loaded


#: The identifiers of a revision file that Alembic reads as names: what each must be, and
#: an example.
_IDENTIFIERS = {
    "down_revision": ("a revision id string", "'a1b2c3d4e5f6'"),
    "depends_on": ("a revision id string", "'a1b2c3d4e5f6'"),
    "branch_labels": ("a label string", "('feature',)"),
}


def _checked(script: Script) -> Script:
    """``script``, refused if its identifiers are not strings.

    Alembic takes ``depends_on = 42`` as it is, then fails building the map with a
    ``KeyError`` or a ``TypeError`` that names no file. (The revision cache reads only
    strings: the files it could not read are imported, and checked here.)
    """
    values = {
        "down_revision": script.down_revision,
        "depends_on": script.dependencies,
        "branch_labels": script._orig_branch_labels,
    }
    for name, value in values.items():
        if not all(isinstance(item, str) for item in to_tuple(value, default=())):
            what, example = _IDENTIFIERS[name]
            raise ScriptDirectoryError(
                f"Revision {script.revision} ({script.path}) has {name} = {value!r}: it "
                f"must be {what}, or a tuple of them.",
                revision=str(script.revision),
                path=script.path,
                hint=f"Fix the file, for example {name} = {example}.",
            )
    return script


def _load_files(script: ScriptDirectory, files: Sequence[RevisionFile]) -> Iterator[Script]:
    """Each file as a ``Script``: from the cached data, or imported when there is none."""
    for item in files:
        if item.data is not None:
            yield LazyScript(item.data, item.path)
        else:
            try:
                loaded = Script._from_path(script, item.path)
            except Exception as exc:
                bad = non_string_revision(Path(item.path))
                if bad is not None:
                    raise bad from None
                raise revision_file_error(exc, item.path) from exc
            if loaded is not None:
                yield _checked(loaded)


_local = threading.local()
_patching = threading.Lock()


class _ThreadProxy:
    """Stands in for ``alembic.op`` / ``alembic.context``'s target, per thread."""

    def __init__(self, cls: type, fallback: Any) -> None:
        self._cls = cls
        self._fallback = fallback

    def __getattr__(self, name: str) -> Any:
        stack = getattr(_local, "stacks", {}).get(self._cls)
        target = stack[-1] if stack else self._fallback
        if target is None:
            raise NameError(f"No Alembic {self._cls.__name__} is active in this thread.")
        return getattr(target, name)


@contextmanager
def thread_safe_proxies() -> Iterator[None]:
    """Let migrations on several threads each see their own ``op`` and ``context``.

    Alembic's module-level ``op`` and ``context`` forward every call to one global
    object (``_proxy``), which threads running migrations side by side would overwrite.
    While this is active, that global is a dispatcher reading a per-thread stack.
    """
    with _patching:
        install, remove = ModuleClsProxy._install_proxy, ModuleClsProxy._remove_proxy
        saved: list[tuple[MutableMapping[str, Any], Any]] = []
        for cls, (_, modules) in list(ModuleClsProxy._setups.items()):
            for globals_, _locals in modules:
                saved.append((globals_, globals_.get("_proxy")))
                globals_["_proxy"] = _ThreadProxy(cls, globals_.get("_proxy"))

        def thread_install(self: ModuleClsProxy) -> None:
            stacks = _local.__dict__.setdefault("stacks", {})
            stacks.setdefault(self.__class__, []).append(self)

        def thread_remove(self: ModuleClsProxy) -> None:
            _local.stacks[self.__class__].pop()

        ModuleClsProxy._install_proxy = thread_install  # type: ignore[method-assign]
        ModuleClsProxy._remove_proxy = thread_remove  # type: ignore[method-assign]
        try:
            yield
        finally:
            ModuleClsProxy._install_proxy = install  # type: ignore[method-assign]
            ModuleClsProxy._remove_proxy = remove  # type: ignore[method-assign]
            for globals_, previous in saved:
                globals_["_proxy"] = previous


def all_scripts(script: ScriptDirectory) -> list[Script]:
    """Every revision of the script directory, without walking the graph in order.

    Building the map checks it (unknown parents, cycles); the order is not needed here.
    """
    seen: dict[str, Script] = {}
    for rev in script.revision_map._revision_map.values():
        if isinstance(rev, Script):
            seen.setdefault(rev.revision, rev)
    return list(seen.values())


def iter_scripts(script: ScriptDirectory) -> Iterable[Script]:
    """Every revision file, loaded one by one without building the revision map.

    From the map's own source: with the revision cache, the files it knows are not imported.
    """
    return (rev for rev in script.revision_map._generator() if isinstance(rev, Script))


def revision_file_error(
    exc: BaseException, path: str | None = None, *, folders: Iterable[str] = ()
) -> ScriptDirectoryError:
    """A clear error for a revision file that could not be loaded, naming it and its line.

    :param path: the file, when known; otherwise the last file of ``folders`` (the version
        locations) that the error passed through.
    """
    if isinstance(exc, SyntaxError):
        return ScriptDirectoryError(
            f"Revision file {exc.filename} has a syntax error on line {exc.lineno}: {exc.msg}.",
            path=exc.filename,
            hint="Fix the file (or delete it if it was generated by mistake).",
        )
    frame = failing_frame(exc, path, folders)
    if path is None and frame is not None:
        path = frame[0]
    where = path or "a revision file"
    if frame is not None:
        where = f"{where} (line {frame[1]})"
    if isinstance(exc, ImportError):
        return ScriptDirectoryError(
            f"Revision file {where} cannot be imported: {exc}.",
            path=path,
            hint="Install the missing module or fix the import in that file.",
        )
    return ScriptDirectoryError(
        f"Revision file {where} failed to load: {type(exc).__name__}: {exc}.",
        path=path,
        hint="Fix the file, or move files that are not revisions out of the migrations folder.",
    )


def failing_frame(
    exc: BaseException, path: str | None = None, folders: Iterable[str] = ()
) -> tuple[str, int] | None:
    """The file and line where ``exc`` last passed through ``path``, or through a file in
    one of ``folders``; ``None`` if it did not."""
    roots = [Path(folder).resolve() for folder in folders]
    wanted = None if path is None else Path(path).resolve()
    found = None
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        file = Path(filename).resolve()
        if file == wanted or (wanted is None and any(file.is_relative_to(r) for r in roots)):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def own_branch_labels(script: Revision) -> set[str]:
    """The branch labels ``script``'s file gives it (the map spreads them to its relatives)."""
    return set(script._orig_branch_labels)


def resolved_dependencies(script: Script) -> tuple[str, ...]:
    """The revision ids ``script.depends_on`` names, resolved by its revision map."""
    return tuple(getattr(script, "_resolved_dependencies", ()) or ())


def bind_script_directory(script: ScriptDirectory, revision_ids: Iterable[str]) -> ScriptDirectory:
    """A view of ``script`` whose revision map holds only ``revision_ids``.

    Dependencies on revisions outside the view are dropped from the copies: they belong
    to another database, and Alembic would otherwise write their ids into this bind's
    version table or run them here.
    """
    ordered = list(dict.fromkeys(revision_ids))
    own = set(ordered)
    full_map = script.revision_map
    everything = {rev.revision for rev in full_map._revision_map.values() if rev is not None}
    if own == everything:
        # The bind owns every revision (the single-database case): the full map is
        # already its own, with no dependency on another bind to drop.
        return script
    copies: list[Script] = []
    for rev_id in ordered:
        original = full_map.get_revision(rev_id)
        assert isinstance(original, Script)
        clone = copy.copy(original)
        kept = [
            token
            for token, resolved in zip(
                to_tuple(original.dependencies, default=()),
                _resolve_tokens(full_map, original.dependencies),
                strict=True,
            )
            if resolved in own
        ]
        clone.dependencies = kept[0] if len(kept) == 1 else (tuple(kept) or None)
        clone.nextrev = frozenset()
        clone._all_nextrev = frozenset()
        # The full map spread labels over every descendant; start from the file's own.
        clone.branch_labels = own_branch_labels(original)
        copies.append(clone)

    view = copy.copy(script)
    view.revision_map = RevisionMap(lambda: iter(copies))
    return view


def _resolve_tokens(full_map: RevisionMap, dependencies: Any) -> list[str | None]:
    resolved: list[str | None] = []
    for token in to_tuple(dependencies, default=()):
        rev = full_map.get_revision(token)
        resolved.append(rev.revision if rev is not None else None)
    return resolved


def revision_steps(
    view: ScriptDirectory, revision_ids: Sequence[str], *, upgrade: bool
) -> Iterator[MigrationStep]:
    """Alembic's own step objects for ``revision_ids`` in the bind view, in order, each
    built when Alembic asks for it: no step, nor the revision function it holds, is kept
    once Alembic has moved on to the next."""
    factory: Callable[[RevisionMap, Script], RevisionStep] = (
        MigrationStep.upgrade_from_script if upgrade else MigrationStep.downgrade_from_script
    )
    for rev_id in revision_ids:
        script = view.revision_map.get_revision(rev_id)
        assert isinstance(script, Script)
        yield factory(view.revision_map, script)


def _file_signature(path: str) -> tuple[int, ...]:
    try:
        stat = os.stat(path)
    except OSError:
        return ()
    return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


def forget_check(script: object) -> None:
    """Forget what an earlier check of ``script``'s file recorded (a run that stopped
    before its steps): the next import starts afresh."""
    if isinstance(script, LazyScript):
        script._checked.clear()


def release_checked(script: object) -> None:
    """Let go of the module of ``script``, just imported to check that the file loads,
    when its top level may run again (:attr:`LazyScript.plain`): its step imports it
    again, and refuses a file that changed meanwhile. A long upgrade then holds one
    revision module at a time, not all of them."""
    if not isinstance(script, LazyScript) or not script.plain or not script._module:
        return
    if not script._imported:
        return  # imported some other way: kept, as a file that is not plain
    script._checked[:] = script._imported
    release_module(script)


def release_module(script: Script | None) -> None:
    """Forget the module of ``script``, whose step has run: a later use imports the file
    again. Only scripts built from the revision cache (:class:`LazyScript`) let go of
    theirs; Alembic's own ``Script`` keeps its module.

    A module is a reference cycle (its functions refer to its namespace), which only the
    cycle collector frees, and the collector does not look at the objects frozen before
    the run (:func:`~flask_alembic._collector.collector_running`). So when nothing but
    the module itself refers to its namespace and its functions, the namespace is emptied
    here and the module's code freed at once. When anything else holds them (a listener
    the file registered, a class it defines, a caller keeping the module), nothing is
    emptied: the collector frees the module once nothing refers to it any more.
    """
    if not isinstance(script, LazyScript) or not script._module:
        return
    _clear_if_unreferenced(script._module.pop())


def _references(item: object) -> int:
    return sys.getrefcount(item)


def _clear_if_unreferenced(module: ModuleType) -> None:
    if getattr(sys, "_is_gil_enabled", lambda: True)() is False:
        return  # a free-threaded build counts references differently: let the collector
    namespace = vars(module)
    # The counts of an object held by one local variable, and of one also held by a dict
    # and a list, as this interpreter reports them: a module held only by ``module``, and
    # a function held only by the namespace, ``own`` and the loop, count the same.
    probe = object()
    alone = _references(probe)
    box, row = {None: probe}, [probe]
    del probe
    listed = 0
    for item in row:
        listed = _references(item)
    del box, row, item
    if _references(module) != alone:
        return
    own = [
        value
        for value in namespace.values()
        if type(value) is FunctionType and value.__globals__ is namespace
    ]
    # Referred to by the module, the local variable and each of its own functions.
    if _references(namespace) != alone + 1 + len(own):
        return
    for function in own:
        if _references(function) != listed:
            return
    namespace.clear()


_NO_CACHE = {"compiled_cache": None}


def uncached_version_writes(context: MigrationContext) -> None:
    """Keep the version table's writes out of SQLAlchemy's compiled-statement cache.

    Alembic writes each step's revision ids into the ``UPDATE`` (``INSERT``, ``DELETE``)
    as literals, so every step's statement is new: cached, each would push out an entry
    that could be used again (about 8 KB each, the cache filling to its limit during the
    first thousand steps of a long upgrade). The revisions' own statements are cached as
    before. Online only: offline, the statements are rendered, never cached.
    """
    from sqlalchemy.sql.dml import UpdateBase

    impl = context.impl
    connection = context.connection
    version = getattr(context, "_version", None)
    if impl.as_sql or connection is None or version is None:
        return
    execute = impl._exec

    def _exec(construct: Any, *args: Any, **kw: Any) -> Any:
        if not args and not kw and isinstance(construct, UpdateBase) and construct.table is version:
            return connection.execute(construct, execution_options=_NO_CACHE)
        return execute(construct, *args, **kw)

    vars(impl)["_exec"] = _exec


def stamp_steps(
    view: ScriptDirectory, target: tuple[str, ...], heads: tuple[str, ...]
) -> list[StampStep]:
    """The version-table edits that move ``heads`` to ``target`` without running code."""
    return list(view._stamp_revs(target or "base", heads))


@contextmanager
def recording_operations(
    context: Any, record: Callable[[Callable[[Any], Any], Any], Any]
) -> Iterator[Any]:
    """Install, as ``alembic.op``, an ``Operations`` on ``context`` that hands every
    operation it invokes, those of ``batch_alter_table()`` included, to
    ``record(invoke, operation)``, which carries it out by calling ``invoke(operation)``.
    The end of a batch, which emits the SQL of its operations, comes as the operation
    ``None``.

    Alembic builds operation objects and then invokes them; its ``Operations.context()``
    installs a plain ``Operations``, so this installs its own (through the same private
    proxy methods ``Operations.context()`` uses).
    """
    import contextlib
    import sys

    from alembic.operations import Operations

    def recorded(operations: Any) -> None:
        invoke = operations.invoke
        vars(operations)["invoke"] = lambda operation: record(invoke, operation)

    operations = Operations(context)
    recorded(operations)
    batch = operations.batch_alter_table

    @contextmanager
    def batch_alter_table(*args: Any, **kw: Any) -> Iterator[Any]:
        manager = batch(*args, **kw)
        batch_operations = manager.__enter__()
        recorded(batch_operations)
        try:
            yield batch_operations
        except BaseException:
            manager.__exit__(*sys.exc_info())
            raise
        # The batch's statements are emitted here, for operations already recorded: handed
        # to ``record`` as the operation ``None``. Offline, a table rebuilt on SQLite needs
        # the reflection offline mode cannot do; the operations are recorded all the same.
        with contextlib.suppress(Exception):
            record(lambda _: manager.__exit__(None, None, None), None)

    vars(operations)["batch_alter_table"] = batch_alter_table
    operations._install_proxy()
    try:
        yield operations
    finally:
        operations._remove_proxy()
