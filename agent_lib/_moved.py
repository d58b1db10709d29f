"""The module paths agent_lib had before its timeouts/ and sessions/ halves, for one release.

``import agent_lib.timeout_config`` (and every other path below) still works and gives
the very module object of the new path, so patches and ``isinstance`` checks agree, with a
`DeprecationWarning` pointing at the importing line. An import hook serves them rather
than files at the old paths, so that git keeps following each file to its new home.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import MappingProxyType, ModuleType
from typing import Final

MOVED: Final = MappingProxyType(
    {
        "agent_lib.timeout_config": "agent_lib.timeouts.manager",
        "agent_lib.deadlines": "agent_lib.timeouts.deadlines",
        "agent_lib.polling": "agent_lib.timeouts.polling",
        "agent_lib.reload": "agent_lib.timeouts.reload",
        "agent_lib.timeout_metrics": "agent_lib.timeouts.metrics",
        "agent_lib.session_manager": "agent_lib.sessions.manager",
        "agent_lib._session_settings": "agent_lib.sessions.settings",
        "agent_lib._session_ids": "agent_lib.sessions._ids",
        "agent_lib.memory_tracker": "agent_lib.sessions._memory_estimate",
        "agent_lib.session_metrics": "agent_lib.sessions.metrics",
        "agent_lib.stores": "agent_lib.sessions.stores",
        "agent_lib.stores.base": "agent_lib.sessions.stores.base",
        "agent_lib.stores.memory": "agent_lib.sessions.stores.memory",
        "agent_lib.stores.redis": "agent_lib.sessions.stores.redis",
    }
)
"""Old module path -> new module path."""


class _Alias(importlib.abc.Loader):
    """Loads an old path as the already imported module of its new path, and warns."""

    def __init__(self, old: str, new: str) -> None:
        self.old = old
        self.new = new
        self._own_spec: ModuleSpec | None = None

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.new)
        self._own_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # importlib has just stamped the old path's spec on the shared module object;
        # give it back its own, or the new package stops being a package (resources,
        # submodule imports).
        module.__spec__ = self._own_spec
        # stacklevel 2 is the importer: warnings skips importlib's _bootstrap frames.
        warnings.warn(
            f"{self.old} moved to {self.new}; the old path is deprecated and goes away "
            "in the next release (public names: import them from agent_lib)",
            DeprecationWarning,
            stacklevel=2,
        )


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(fullname, new))


def install() -> None:
    """Put the finder first (idempotent), before the path finder could find a stale file."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())
