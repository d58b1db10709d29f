"""agent_lib's layout contract: the public names, the old module paths, the layers of each half."""

from __future__ import annotations

import ast
import importlib
import sys
import warnings
from pathlib import Path

import pytest

import agent_lib
from agent_lib._moved import MOVED

AGENT_LIB = Path(agent_lib.__file__).parent

# The public API, as `from agent_lib import ...` gave it before the split, plus the
# session errors issue 12 added (SessionConflict, SessionExists, the store's refusals).
PUBLIC_NAMES = [
    "AsyncTimeoutManager",
    "CleanupReport",
    "ConfigError",
    "Deadline",
    "DeadlineExceeded",
    "DurationError",
    "HourglassError",
    "InvalidSessionId",
    "PayloadTooLarge",
    "PollingPolicy",
    "Session",
    "SessionConflict",
    "SessionError",
    "SessionExists",
    "SessionManager",
    "SessionNotFound",
    "SessionStoreFull",
    "SessionStoreLoading",
    "SessionStoreReadOnly",
    "SessionStoreResharding",
    "SessionStoreUnavailable",
    "SyncSessionManager",
    "TimeoutConfig",
    "TimeoutEvents",
    "TimeoutManager",
    "UnknownTimeout",
    "apoll",
    "atomic_swap",
    "check_deadline",
    "current_deadline",
    "deadline",
    "format_duration",
    "parse_duration",
    "parse_quantity",
    "poll",
    "remaining",
]

# Old path -> a name users imported from it (None: the module itself is what was used).
OLD_PATHS = {
    "agent_lib.timeout_config": "TimeoutManager",
    "agent_lib.deadlines": "Deadline",
    "agent_lib.polling": "PollingPolicy",
    "agent_lib.reload": "atomic_swap",
    "agent_lib.timeout_metrics": "TimeoutEvents",
    "agent_lib.session_manager": "SessionManager",
    "agent_lib._session_settings": "SessionSettings",
    "agent_lib._session_ids": "validate_namespace",
    "agent_lib.memory_tracker": "estimate_session_bytes",
    "agent_lib.session_metrics": None,
    "agent_lib.stores": "MemoryStore",
    "agent_lib.stores.base": "SessionStore",
    "agent_lib.stores.memory": "MemoryStore",
    "agent_lib.stores.redis": "RedisStore",
}


def test_public_names_are_unchanged() -> None:
    assert sorted(agent_lib.__all__) == PUBLIC_NAMES
    for name in PUBLIC_NAMES:
        assert getattr(agent_lib, name) is not None, name


def test_every_moved_module_is_covered() -> None:
    assert set(MOVED) == set(OLD_PATHS)
    for new in MOVED.values():
        assert not new.startswith(tuple(OLD_PATHS)), new


@pytest.mark.parametrize("old", sorted(OLD_PATHS))
def test_old_path_warns_at_the_importer_and_gives_the_same_objects(
    old: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_module = importlib.import_module(MOVED[old])
    parent = old.rpartition(".")[0]
    with warnings.catch_warnings():  # the parent's own warning is its own case
        warnings.simplefilter("ignore", DeprecationWarning)
        importlib.import_module(parent)
    monkeypatch.delitem(sys.modules, old, raising=False)

    with pytest.warns(DeprecationWarning, match=f"{old} moved to {MOVED[old]}") as caught:
        old_module = __import__(old, fromlist=["_"])

    assert old_module is new_module
    assert [Path(w.filename) for w in caught] == [Path(__file__)]
    if OLD_PATHS[old] is not None:
        assert getattr(old_module, OLD_PATHS[old]) is getattr(new_module, OLD_PATHS[old])


def test_from_old_path_import_name_is_the_public_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "agent_lib.timeout_config", raising=False)
    monkeypatch.delattr(agent_lib, "timeout_config", raising=False)
    with pytest.warns(DeprecationWarning):
        from agent_lib.timeout_config import TimeoutManager
    assert TimeoutManager is agent_lib.TimeoutManager


def test_new_paths_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for new in MOVED.values():
            importlib.import_module(new)


# Each half, its layers from the bottom up: a module imports only from layers below its own.
LAYERS = {
    "timeouts": [
        "metrics",
        "timing",
        "deadlines",
        "_http",
        "_http_timing",
        "_layers",
        "polling",
        "_inotify",
        "reload",
        "_kube",
        "_sources",
        "_arbiter",
        "apiwatch",
        "_pod_report",
        "_cluster_link",
        "manager",
    ],
    "sessions": [
        "_ids",
        "_memory_estimate",
        "_loops",
        "store_url",
        "stores",
        "metrics",
        "settings",
        "manager",
        "items",
        "entries",
    ],
}


def _agent_lib_imports(path: Path) -> set[str]:
    """Every agent_lib module a file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("agent_lib")}


def _layer(half: str, module: str) -> int | None:
    prefix = f"agent_lib.{half}."
    if not module.startswith(prefix):
        return None
    first = module[len(prefix) :].split(".")[0]
    return LAYERS[half].index(first) if first in LAYERS[half] else None


@pytest.mark.parametrize("half", sorted(LAYERS))
def test_each_half_imports_only_downwards_and_not_the_other_half(half: str) -> None:
    other = next(name for name in LAYERS if name != half)
    files = sorted((AGENT_LIB / half).rglob("*.py"))
    assert files
    for path in files:
        if path.name == "__init__.py" and path.parent == AGENT_LIB / half:
            continue
        relative = path.relative_to(AGENT_LIB).with_suffix("").parts
        own = _layer(half, "agent_lib." + ".".join(relative))
        assert own is not None, f"{path} is in no layer of {half}: add it to LAYERS"
        for imported in _agent_lib_imports(path):
            assert not imported.startswith(f"agent_lib.{other}"), f"{path} imports {imported}"
            theirs = _layer(half, imported)
            assert theirs is None or theirs <= own, f"{path} imports {imported}, a layer above"


def test_shared_basics_and_config_import_neither_half() -> None:
    shared = [*AGENT_LIB.glob("*.py"), *(AGENT_LIB / "config").rglob("*.py")]
    for path in shared:
        if path.name in {"__init__.py", "_moved.py"} and path.parent == AGENT_LIB:
            continue
        for imported in _agent_lib_imports(path):
            assert not imported.startswith(("agent_lib.timeouts", "agent_lib.sessions")), (
                f"{path} imports {imported}"
            )
