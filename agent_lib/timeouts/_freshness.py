"""Which of two sources of the same ConfigMap is newer: the API watch or the mounted file.

The API watch carries the ConfigMap's ``resourceVersion``, so among API versions the
higher one wins. The mounted file carries nothing but its content, and kubelet updates
it 60-90 s after the API has the change; so a file whose content this process has
already replaced (through either source) is an older version and never rolls the config
back, while content never seen before is newer (the API is cut off, or lagging) and is
applied. Only the API, with a newer ``resourceVersion``, can bring old content back.

The price: while the API is unreachable, a revert to content already replaced waits for
the API (the watch reads the ConfigMap again when it reconnects).
"""

from __future__ import annotations

import threading


def _newer(candidate: str, than: str | None) -> bool:
    """``resourceVersion`` order: numeric in every real API server, opaque by contract.

    Non-numeric versions cannot be ordered; a different one is taken as newer (the
    watch delivers in order, so that is what it is).
    """
    if than is None:
        return True
    if candidate.isdigit() and than.isdigit():
        return int(candidate) > int(than)
    return candidate != than


class Freshness:
    """Remembers the last API ``resourceVersion`` and every hash that was superseded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.resource_version: str | None = None
        self._api_hash: str | None = None
        self._superseded: set[str] = set()

    def api_is_newer(self, resource_version: str) -> bool:
        with self._lock:
            return _newer(resource_version, self.resource_version)

    def seen_api(self, resource_version: str, digest: str) -> None:
        """Record an API version as handled (applied or rejected): it is not offered again,
        and the content of the API version before it is old from now on."""
        with self._lock:
            if not _newer(resource_version, self.resource_version):
                return
            self.resource_version = resource_version
            if self._api_hash is not None and self._api_hash != digest:
                self._superseded.add(self._api_hash)
            self._superseded.discard(digest)
            self._api_hash = digest

    def file_may_apply(self, digest: str) -> bool:
        """False for a mounted file whose content was already replaced by a newer one."""
        with self._lock:
            return digest not in self._superseded

    def moved(self, old: str, new: str) -> None:
        """The active config went from hash ``old`` to ``new`` (through the API or the file)."""
        with self._lock:
            self._superseded.discard(new)
            if old != new:
                self._superseded.add(old)
