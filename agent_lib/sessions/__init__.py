"""The sessions half of agent_lib: sessions that expire and clean themselves up.

Layers, outermost first (each module imports only the ones below it):

- ``entries``: ``SessionEntries``, named binary entries beside sessions (LangGraph's
  checkpoints), built on ``items``' records and encoding;
- ``items``: ``SessionItems``, lists of items beside sessions (the framework integrations);
- ``manager``: ``SessionManager`` / ``SyncSessionManager``, the one object an agent holds;
- ``settings``: the resolved session rules (environment, mounted config, built-ins);
- ``stores``: where sessions live: ``memory`` for local dev, ``redis`` (with its Lua scripts),
  and their item lists (``items``) or named entries (``entries``);
- ``_loops``: sharing between event loops and threads (a pool per loop, periodic tasks);
- ``_ids``, ``_memory_estimate``: session-id/key validation and the payload size estimate;
- ``metrics``: counters and cleanup summaries.

The public names are exported from ``agent_lib``; import them from there.
"""
