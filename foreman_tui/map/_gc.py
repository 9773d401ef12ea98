"""Keeping the cyclic garbage collector out of bulk, acyclic allocation.

Loading a large map builds hundreds of thousands of small objects (dicts, pydantic models) that never
form cycles and live as long as the map. Left alone, the collector runs dozens of full collections
during the load, and one more right after, all finding nothing: half of the load time of a
10,000-node map. So the collector is paused while they are built.

A one-shot command (``foreman plan``) may also ``gc.freeze()`` what it loaded, inside the pause, so the
first collection after it does not scan the whole map either. Long-running processes must not: a freeze
also pins whatever cyclic garbage exists at that moment.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
