"""The revision of a rendered config: the order in which versions were written.

A content hash says *which* config a version holds, never *when* it was written: a
revert brings back an old hash as the newest version. So every writer of the
``hourglass-config`` ConfigMap or of a local config folder (the operator,
``hourglass local``) stores a revision beside ``hourglass.yaml``, under the key
``revision``, and agents apply the highest one. It is not part of ``hourglass.yaml``,
so the content hash (``hourglass.dev/config-hash``) and ``hourglass render`` stay
exactly as they were.

A revision is a hybrid logical clock: the writer's wall clock in milliseconds, or one
more than the revision it replaces when that is higher. It only ever grows for a
namespace, even when the ConfigMap is deleted and written again from nothing (a plain
counter would start over at 1, below what the agents already run).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from agent_lib.errors import ConfigError

CONFIG_KEY: Final = "hourglass.yaml"
REVISION_KEY: Final = "revision"
"""The ConfigMap key (and the file in a mounted folder) that holds the revision."""
_MAX_DIGITS: Final = 19


def parse_revision(text: str | bytes | None) -> int | None:
    """A stored revision, checked; None when there is none (a writer older than revisions)."""
    if text is None:
        return None
    value = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    value = value.strip()
    if not value:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > _MAX_DIGITS:
        raise ConfigError(REVISION_KEY, f"expected a whole number of up to {_MAX_DIGITS} digits")
    return int(value)


def next_revision(previous: int | None, now: float) -> int:
    """The revision of a new version replacing ``previous``, written at ``now`` (epoch seconds)."""
    return max((previous or 0) + 1, int(now * 1000))


def revision_to_write(current: Mapping[str, str] | None, content: str, now: float) -> int:
    """The revision to store with ``content`` over ``current`` (the data written before).

    Unchanged content keeps its revision, so a writer that repeats itself (a resync, a
    restart) makes no new version; changed content, a revert included, gets a new one.
    A malformed stored revision is treated as none: the clock still puts the new one
    above anything a well-behaved writer stored before.
    """
    try:
        previous = parse_revision((current or {}).get(REVISION_KEY))
    except ConfigError:
        previous = None
    if current is not None and current.get(CONFIG_KEY) == content and previous is not None:
        return previous
    return next_revision(previous, now)
