"""Session stores: `MemoryStore` (in-process) and `RedisStore` (Redis / Valkey)."""

from agent_lib.sessions.stores.base import CleanupReport, Limits, SessionStore, StoredSession
from agent_lib.sessions.stores.memory import MemoryStore

__all__ = ["CleanupReport", "Limits", "MemoryStore", "SessionStore", "StoredSession"]
