"""Which version of the config an agent runs, when the file and the API both bring one.

One rule (`supersedes`), in this order:

1. The API delivers its versions in ``resourceVersion`` order; one already handled is
   never offered again (a re-list after ``410 Gone`` or a reconnect).
2. Nothing new: the same content at the same revision.
3. When the file is the only source, every new version of it applies: nobody else can
   be newer, so a revert is just the next version.
4. Both carry a revision (every writer since revisions): the higher revision wins,
   whichever source brings it first. A file that kubelet has not refreshed yet is lower
   and never rolls back; an agent that restarted on a stale file takes the API's higher
   revision as soon as the API answers; an API outage never stops a higher file.
   At an equal revision only the API may replace content (an edit of the ConfigMap by
   hand, in the API's own order).
5. A version with a revision replaces one without (the built-in profile, or a bundle
   from an operator older than revisions).
6. A version without a revision, while the API is in use (an older operator wrote it):
   the rule from before revisions. The API's order decides among API versions; a file
   applies unless its content was already replaced by a newer one.

An invalid version never runs and changes nothing here: the agent keeps running what it
ran, and the next valid version is judged against that.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from agent_lib.timeouts._sources import ConfigVersion, Origin


@dataclass(frozen=True)
class Stamp:
    """What the rule compares: where a version came from, its revision and its content hash."""

    origin: Origin
    revision: int | None
    digest: str


def supersedes(
    candidate: Stamp,
    current: Stamp,
    *,
    api_in_use: bool,
    replaced: frozenset[str] = frozenset(),
) -> bool:
    """Whether ``candidate`` should replace the ``current`` version (rules 2-6 above).

    ``replaced`` holds content hashes that a newer version has replaced; only rule 6,
    for bundles without a revision, looks at it.
    """
    if candidate.revision == current.revision and candidate.digest == current.digest:
        return False
    if candidate.origin == "file" and not api_in_use:
        return True
    if candidate.revision is not None and current.revision is not None:
        if candidate.revision != current.revision:
            return candidate.revision > current.revision
        return candidate.origin == "api"
    if candidate.revision is not None:
        return True
    if candidate.origin == "api":
        return True
    return candidate.digest not in replaced


def newer_resource_version(candidate: str, than: str | None) -> bool:
    """``resourceVersion`` order: numeric in every real API server, opaque by contract.

    Non-numeric versions cannot be ordered; a different one is taken as newer (the watch
    delivers in order, so that is what it is).
    """
    if than is None:
        return True
    if candidate.isdigit() and than.isdigit():
        return int(candidate) > int(than)
    return candidate != than


class Arbiter:
    """The state `supersedes` needs, kept for one `TimeoutManager`; thread-safe."""

    def __init__(self, running: Stamp) -> None:
        self._lock = threading.Lock()
        self.running = running
        """The version the agent runs."""
        self.resource_version: str | None = None
        """The last API ``resourceVersion`` handled."""
        self._replaced: set[str] = set()

    def offer(self, version: ConfigVersion, *, api_in_use: bool) -> bool:
        """Whether ``version`` should be validated and, if valid, applied."""
        with self._lock:
            if version.origin == "api":
                rv = version.resource_version or ""
                if not newer_resource_version(rv, self.resource_version):
                    return False
                self.resource_version = rv
            return supersedes(
                _stamp(version),
                self.running,
                api_in_use=api_in_use,
                replaced=frozenset(self._replaced),
            )

    def adopted(self, version: ConfigVersion) -> None:
        """``version`` runs now; the content it replaced is older from now on."""
        with self._lock:
            new = _stamp(version)
            if self.running.digest != new.digest:
                self._replaced.add(self.running.digest)
            self._replaced.discard(new.digest)
            self.running = new


def _stamp(version: ConfigVersion) -> Stamp:
    return Stamp(version.origin, version.revision, version.digest)
