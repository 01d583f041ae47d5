"""Loading the revisions of one app context: the script directory, the revision cache's
fast path, each bind's history and runtime, importing revision modules, load errors.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask

from . import config
from . import revision_cache
from .errors import Command
from .errors import FlaskAlembicError
from .errors import RevisionError
from .errors import ScriptDirectoryError
from .plan import Plan
from .plan import to_tuple
from .registry import BindRegistry

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import Script
    from alembic.script import ScriptDirectory

    from .environment import BindRuntime
    from .history import BindHistory

__all__ = ["Loader", "QuickGraph", "command_error"]


class QuickGraph:
    """Per-bind heads and cross-bind dependencies, read from the revision cache."""

    __slots__ = ("depends", "exact", "heads")

    def __init__(
        self,
        heads: Mapping[str, tuple[str, ...]],
        depends: Mapping[str, set[str]],
        *,
        exact: bool = True,
    ) -> None:
        self.heads = heads
        self.depends = depends
        #: Whether every revision file was checked; if not (a folder trusted whole), the
        #: graph may answer that a bind is at its heads, nothing more.
        self.exact = exact

    def related(self, names: Iterable[str]) -> set[str]:
        """``names`` and every bind they depend on, directly or not."""
        found = set(names)
        stack = list(found)
        while stack:
            for other in self.depends.get(stack.pop(), ()):
                if other not in found:
                    found.add(other)
                    stack.append(other)
        return found

    def at_heads(self, name: str, current: Iterable[str], *, single: bool) -> bool:
        heads = self.heads.get(name, ())
        if single and len(heads) > 1:
            return False
        return set(current) == set(heads)


class Loader:
    """The revisions of one app context, loaded once (again after a revision is written).

    A private holder, not a dataclass: every ``flask`` command of the app imports this
    module, and defining a dataclass costs about a millisecond.
    """

    def __init__(self, app: Flask, registry: BindRegistry, *, keep_modules: bool = False) -> None:
        self.app = app
        self.registry = registry
        #: Whether the revision modules stay loaded after their step ran: for a loader
        #: shared by many runs (the test harness's, one import per session). Otherwise
        #: each is let go of once its step has run, and imported again if run again.
        self.keep_modules = keep_modules
        self._script: ScriptDirectory | None = None
        self._revisions: revision_cache.Revisions | None = None
        self._owner: dict[str, str] = {}
        self._runtimes: dict[str, BindRuntime] = {}
        self._histories: dict[str, BindHistory] = {}

    def refresh(self) -> None:
        """Forget the loaded scripts, after writing a revision file."""
        self._script = None
        self._revisions = None
        self._owner.clear()
        self._runtimes.clear()
        self._histories.clear()

    @property
    def location(self) -> Path:
        """The migrations folder."""
        return config.script_location(self.app)

    @property
    def config(self) -> Config:
        """A new Alembic ``Config`` listing every managed bind's version locations."""
        return config.alembic_config(self.app, self.registry.version_locations())

    @property
    def script_directory(self) -> ScriptDirectory:
        """Alembic's ``ScriptDirectory`` holding every bind's revisions."""
        if self._script is None:
            location = self.location
            if location.exists() and not location.is_dir():
                raise ScriptDirectoryError(
                    f"The migrations folder {location} is a file, not a folder.",
                    path=str(location),
                    hint="Move the file away, or point ALEMBIC['script_location'] elsewhere.",
                )
            if not location.is_dir():
                raise ScriptDirectoryError(
                    f"The migrations folder {location} does not exist.",
                    path=str(location),
                    hint=("Create it with ", Command("mkdir"), " (or alembic.mkdir())."),
                )
            if not os.access(location, os.R_OK | os.X_OK):
                raise ScriptDirectoryError(
                    f"The migrations folder {location} is not readable.",
                    path=str(location),
                    hint="Fix its permissions.",
                )
            from alembic.script import ScriptDirectory

            try:
                script = ScriptDirectory.from_config(self.config)
            except command_error() as exc:
                raise ScriptDirectoryError(
                    f"Cannot use the migrations folder {location}: {exc}",
                    path=str(location),
                    hint="Check the 'ALEMBIC' config.",
                ) from None
            from . import _alembic_compat as compat

            if (
                config.revision_cache_enabled(self.app)
                and not script.sourceless
                and not script.recursive_version_locations
            ):
                compat.use_revision_files(script, self.revisions().files())
            else:
                compat.check_revision_files(script)
            self._script = script
        return self._script

    def revisions(self) -> revision_cache.Revisions:
        """Every revision file of every bind, as the revision cache knows them, each file
        checked (unless ``ALEMBIC_REVISION_CACHE_CHECK`` is ``"folders"``)."""
        if self._revisions is None:
            self._revisions = self._scan(
                trust_folders=config.revision_cache_check(self.app) == "folders"
            )
        return self._revisions

    def _scan(self, *, trust_folders: bool) -> revision_cache.Revisions:
        return revision_cache.scan(
            self.registry.version_locations(),
            self.location / "__pycache__",
            trust_folders=trust_folders,
        )

    def quick_graph(self, *, exact: bool = False) -> QuickGraph | None:
        """Each bind's heads from the cache alone, without importing Alembic.

        ``None`` when only Alembic can tell: the cache is off, a file could not be read
        statically, a dependency is named by label, or the history is broken.

        Unless ``exact``, a folder may be trusted by its own signature and its heads'
        files (``ALEMBIC_REVISION_CACHE_CHECK = "heads"``, the default): enough to answer
        that there is nothing to do, not to plan (:attr:`QuickGraph.exact` says which).
        """
        if not config.static_graph_allowed(self.app) or not self.location.is_dir():
            return None
        registry = self.registry
        if exact or self._revisions is not None or config.revision_cache_check(self.app) != "heads":
            revisions = self.revisions()
        else:
            revisions = self._scan(trust_folders=True)
            if not revisions.trusted:  # every file was checked: as good as revisions()
                self._revisions = revisions
        graphs: dict[str, list[revision_cache.FolderGraph]] = {b.name: [] for b in registry}
        for folder, graph in revisions.graphs().items():
            bind = registry.bind_for_location(folder)
            if bind is None or graph is None:
                return None
            graphs[bind.name].append(graph)
        owner: dict[str, str] = {}
        if revisions.distinct is None or any(
            graph.external_downs or graph.depends_on for found in graphs.values() for graph in found
        ):
            # Every id's bind is needed (a dependency, a parent in another folder), or the
            # cache does not know the ids to be distinct: both cost a pass over every id.
            count = 0
            for name, found in graphs.items():
                for graph in found:
                    owner.update(dict.fromkeys(graph.ids, name))
                    count += len(graph.ids)
            if len({rev_id.lower() for rev_id in owner}) != count:
                return None  # an id used twice: let Alembic load it and say what is wrong
        elif not revisions.distinct:
            return None  # an id used twice: let Alembic load it and say what is wrong
        heads: dict[str, tuple[str, ...]] = {}
        depends: dict[str, set[str]] = {}
        for name, folders in graphs.items():
            # A revision of one folder may follow one in another folder of the same bind.
            external = {down for graph in folders for down in graph.external_downs}
            if any(owner.get(down) != name for down in external):
                return None  # a broken history: let Alembic load it and say what is wrong
            heads[name] = tuple(
                rev for graph in folders for rev in graph.heads if rev not in external
            )
            depends[name] = set()
            for token in {token for graph in folders for token in graph.depends_on}:
                if token not in owner:
                    return None  # a label, or an unknown id: Alembic resolves or reports it
                if owner[token] != name:
                    depends[name].add(owner[token])
        return QuickGraph(heads, depends, exact=not revisions.trusted)

    def load(self) -> None:
        """Load every revision and split them by bind."""
        from . import _alembic_compat as compat
        from .environment import BindRuntime
        from .history import BindHistory

        if self._runtimes:
            return
        script = self.script_directory
        registry = self.registry
        scripts = _load_scripts(script)
        folded: dict[str, Script] = {}
        for rev in scripts:
            first = folded.setdefault(rev.revision.lower(), rev)
            if first is not rev:
                raise ScriptDirectoryError.for_duplicate_id(
                    first.revision, first.path, rev.path, spelled=rev.revision
                )
        owner: dict[str, str] = {}
        by_bind: dict[str, list[str]] = {b.name: [] for b in registry}
        for rev in scripts:
            bind = registry.bind_for_path(rev.path)
            if bind is None:  # pragma: no cover - only files in bind locations are loaded
                continue
            owner[rev.revision] = bind.name
            by_bind[bind.name].append(rev.revision)

        for rev in scripts:
            name = owner.get(rev.revision)
            if name is None:  # pragma: no cover
                continue
            for down in to_tuple(rev.down_revision):
                if owner.get(down, name) != name:
                    raise ScriptDirectoryError(
                        f"Revision {rev.revision} ({rev.path}) of bind {name!r} has "
                        f"down_revision {down}, which belongs to bind {owner[down]!r}.",
                        bind=name,
                        revision=rev.revision,
                        path=rev.path,
                        hint="A bind's history must descend from its own revisions; use "
                        "depends_on for an order between binds.",
                    )

        alembic_config = self.config
        for bind in registry:
            view = compat.bind_script_directory(script, by_bind[bind.name])
            foreign: dict[str, tuple[tuple[str, str], ...]] = {}
            for rev_id in by_bind[bind.name]:
                deps = compat.resolved_dependencies(script.revision_map.get_revision(rev_id))  # type: ignore[arg-type]
                outside = tuple((owner[d], d) for d in deps if owner.get(d, bind.name) != bind.name)
                if outside:
                    foreign[rev_id] = outside
            self._runtimes[bind.name] = BindRuntime(bind, view, alembic_config)
            self._histories[bind.name] = BindHistory(bind.name, view.revision_map, foreign)
        self._owner = owner

    @property
    def runtimes(self) -> dict[str, BindRuntime]:
        """Each managed bind's view of the scripts, for running them."""
        self.load()
        return self._runtimes

    @property
    def histories(self) -> dict[str, BindHistory]:
        """Each managed bind's history."""
        self.load()
        return self._histories

    def owner_of(self, rev_id: str) -> str | None:
        """The bind a full revision id belongs to, if any; binds that are not managed
        included (their files are read statically, never imported)."""
        self.load()
        if rev_id in self._owner:
            return self._owner[rev_id]
        for bind in self.registry.all:
            if bind.managed:
                continue
            found = revision_cache.scan(bind.version_locations, None).files()
            if any(item.data is not None and item.data.revision == rev_id for item in found):
                return bind.name
        return None

    def bind_of(self, revision: str | Script) -> str:
        """The name of the bind a revision (an id, a prefix or a ``Script``) belongs to."""
        self.load()
        rev_id = revision if isinstance(revision, str) else revision.revision
        try:
            full = self.script_directory.get_revision(rev_id).revision
        except command_error() as exc:
            raise RevisionError(
                str(exc), revision=rev_id, hint=("Run ", Command("log"), ".")
            ) from None
        return self._owner[full]

    def scripts(self, ids: Iterable[str]) -> tuple[Script, ...]:
        """The ``Script`` of each revision id."""
        script = self.script_directory
        return tuple(script.get_revision(i) for i in ids)

    def check_steps(self, plan: Plan) -> None:
        """Refuse, before anything runs, a step whose file was written for a lockstep
        history (its ``upgrade`` takes the database's name): read, never imported."""
        from . import _alembic_compat as compat

        runtimes = self.runtimes
        for step in plan.steps:
            if step.revision is not None and step.path is not None:
                script = runtimes[step.bind].script.revision_map.get_revision(step.revision)
                if isinstance(script, compat.LazyScript):
                    # The revision cache read the file as it is now: no second read.
                    self._refuse_lockstep(step.bind, step.revision, step.path, script.lockstep)
                else:
                    self.check_revision_file(step.bind, step.revision, step.path)

    def check_revision_file(self, bind: str, revision: str, path: str) -> None:
        """Refuse a revision file written for a lockstep history (its ``upgrade`` takes
        the database's name): read, never imported."""
        try:
            source = Path(path).read_bytes()
        except OSError:
            return  # importing it reports the error
        self._refuse_lockstep(bind, revision, path, revision_cache.lockstep_function(source))

    def _refuse_lockstep(self, bind: str, revision: str, path: str, function: str | None) -> None:
        if function:
            raise ScriptDirectoryError(
                f"Revision {revision} ({path}) of bind {bind!r} belongs to "
                f"a lockstep history: its {function}() takes the database's name, one "
                "history for every database; here each bind has a history of its own.",
                bind=bind,
                revision=revision,
                path=path,
                hint=("Run ", Command("adopt"), " to convert the history."),
            )

    def revision_at(self, path: Path) -> str | None:
        """The id of the revision whose file is ``path``, if any bind has one there."""
        wanted = path.resolve()
        for runtime in self.runtimes.values():
            for script in runtime.script.walk_revisions("base", "heads"):
                if script.path and Path(script.path).resolve() == wanted:
                    return str(script.revision)
        return None

    def import_steps(self, plan: Plan) -> None:
        """Import the code of every step before running any: a broken file changes nothing.

        A file's bad ``timeouts`` override is refused here too.
        """
        from . import _alembic_compat as compat
        from . import timeouts

        self.check_steps(plan)
        runtimes = self.runtimes
        for step in plan.steps:
            if step.revision is None:
                continue
            script = runtimes[step.bind].script.revision_map.get_revision(step.revision)
            assert script is not None
            compat.forget_check(script)
            try:
                module = getattr(script, "module")  # noqa: B009 - importing is the point
            except (FlaskAlembicError, command_error()):
                raise
            except Exception as exc:
                raise compat.revision_file_error(exc, step.path) from exc
            timeouts.effective(runtimes[step.bind].bind, module)
            if not self.keep_modules:
                # Checked: a plain file is imported again for its step, so that a long
                # upgrade holds one revision module at a time.
                del module
                compat.release_checked(script)


def _load_scripts(script: ScriptDirectory) -> list[Script]:
    """Every revision in the script directory, with load errors turned into clear ones."""
    from alembic.script.revision import RevisionError as AlembicRevisionError

    from . import _alembic_compat as compat

    try:
        with warnings.catch_warnings():
            # Alembic only warns about a missing down_revision, then fails obscurely, and
            # about a revision id used twice, then hides one of the two files.
            warnings.filterwarnings("error", message=r"Revision .* is not present")
            warnings.filterwarnings("error", message=r"Revision .* is present more than once")
            return compat.all_scripts(script)
    except UserWarning as exc:
        if "more than once" in str(exc):
            raise _duplicate_revision_error(script, str(exc)) from None
        raise _missing_revision_error(script, str(exc)) from None
    except FlaskAlembicError:
        raise
    except (command_error(), AlembicRevisionError) as exc:
        raise ScriptDirectoryError.inconsistent(script.dir, exc) from None
    except Exception as exc:
        # Without the revision cache, Alembic imports each file as it builds the map.
        folders = script.version_locations
        if isinstance(exc, SyntaxError | ImportError) or compat.failing_frame(exc, folders=folders):
            raise compat.revision_file_error(exc, folders=folders) from exc
        if isinstance(exc, KeyError):
            # Alembic looks each depends_on up without checking it: a bare KeyError.
            raise _missing_revision_error(script, f"unknown revision {exc}") from None
        if isinstance(exc, TypeError | ValueError):
            bad = _bad_revision_id(folders)
            if bad is not None:
                raise bad from None
        raise


def _bad_revision_id(folders: Iterable[str]) -> ScriptDirectoryError | None:
    """The revision file whose ``revision`` is not a string (Alembic fails on it unnamed)."""
    for folder in folders:
        for path in sorted(Path(folder).glob("*.py")):
            error = revision_cache.non_string_revision(path)
            if error is not None:
                return error
    return None


def _missing_revision_error(script: ScriptDirectory, warning: str) -> ScriptDirectoryError:
    """Name the revision file whose down_revision or depends_on points nowhere."""
    from . import _alembic_compat as compat

    scripts = list(compat.iter_scripts(script))
    known = {s.revision for s in scripts}
    labels = {label for s in scripts for label in s.branch_labels}
    for candidate in scripts:
        wanted = to_tuple(candidate.down_revision) + to_tuple(candidate.dependencies)
        missing = [rev for rev in wanted if rev not in known and rev not in labels]
        if missing:
            return ScriptDirectoryError(
                f"Revision {candidate.revision} ({candidate.path}) refers to revision "
                f"{missing[0]}, which does not exist.",
                revision=candidate.revision,
                path=candidate.path,
                hint="Fix its down_revision / depends_on, or restore the missing file.",
            )
    return ScriptDirectoryError.inconsistent(script.dir, warning)


def _duplicate_revision_error(script: ScriptDirectory, warning: str) -> ScriptDirectoryError:
    """Name both files of a revision id that is used twice."""
    from . import _alembic_compat as compat

    paths: dict[str, list[str]] = {}
    for candidate in compat.iter_scripts(script):
        paths.setdefault(candidate.revision, []).append(candidate.path)
    for rev_id, found in paths.items():
        if len(found) > 1:
            return ScriptDirectoryError.for_duplicate_id(rev_id, found[0], found[1])
    return ScriptDirectoryError.inconsistent(  # pragma: no cover - Alembic warned of one
        script.dir, warning
    )


def command_error() -> type[Exception]:
    """Alembic's CommandError, imported only when an error is being handled."""
    from alembic.util import CommandError

    return CommandError
