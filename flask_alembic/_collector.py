"""Pausing Python's cycle collector around bursts of short-lived allocation."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]


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
