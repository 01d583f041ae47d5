"""Pausing Python's cycle collector around bursts of short-lived allocation."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused", "collector_running"]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the cycle collector off, restoring its state afterwards.

    Loading an app, reading the revision cache and running migrations allocate many
    objects that live until the work ends; each automatic collection would scan them all
    again. Collecting at most once, afterwards, is far cheaper, and nothing is leaked: the
    collector runs again as soon as the block ends.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@contextmanager
def collector_running() -> Iterator[None]:
    """Run the block with the cycle collector on, but blind to the objects that exist
    when it starts (frozen: the app, the loaded revisions, the plan), restoring its state
    afterwards.

    For the migrations themselves: each step leaves cycles behind (SQLAlchemy's
    ``MetaData`` and ``Table`` objects of ``op.create_table()``, about 12 KB a step),
    which a paused collector would keep until the whole run ends, so memory would grow
    with the number of steps. With the objects already there frozen, each collection
    scans only what the steps allocated, so it stays cheap however large the history.
    Objects frozen by someone else are left frozen.
    """
    collecting = gc.isenabled()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.enable()
    try:
        yield
    finally:
        if not collecting:
            gc.disable()
        if freeze:
            gc.unfreeze()
