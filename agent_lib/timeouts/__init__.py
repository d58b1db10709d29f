"""The timeouts half of agent_lib: named timeouts that follow the mounted config live.

Layers, outermost first (each module imports only the ones below it):

- ``manager``: ``TimeoutManager`` / ``AsyncTimeoutManager``, the one object an agent holds;
- ``reload``: the watch on the mounted ConfigMap folder (or the API) and ``atomic_swap``;
- ``polling``: ``poll`` / ``apoll`` with a profile's polling policy;
- ``_http``: ``httpx.Timeout`` / ``aiohttp.ClientTimeout`` from a profile, capped by the deadline;
- ``deadlines``: the ambient ``deadline()`` scope and ``remaining()``;
- ``timing``: ``timed()`` and the latency histogram every bounded operation records into;
- ``metrics``: ``TimeoutEvents``, counters the layers above report into.

The public names are exported from ``agent_lib``; import them from there.
"""
