"""`ItemStore` for `RedisStore`: one script per call (``_lua/items_*.lua``).

Item writes are data writes: each bumps the session's version (``update(...,
if_version=)`` then sees them) and carries a write token, so a call retried after a
lost reply finds its own write instead of applying it twice. An append that must make
room under a cap runs twice, like ``create``: the first call names the candidates, the
second declares their keys and re-checks each (at most ``WRITE_EVICTION_BUDGET``).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent_lib.errors import PayloadTooLarge
from agent_lib.sessions.stores._value import unwrap
from agent_lib.sessions.stores.base import WRITE_EVICTION_BUDGET, Limits
from agent_lib.sessions.stores.items import ItemStore, StoredItems


class RedisItems(ItemStore):
    """Mixed into `RedisStore`; the list of session ``id`` is ``P:{P:ns}:i:<id>``."""

    limits: Limits
    session_base: str
    items_base: str

    if TYPE_CHECKING:  # provided by RedisStore, as for the memory store's mixin

        async def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any: ...
        def _keys(self, session_id: str, *others: str) -> list[str]: ...

    def items_key_for(self, session_id: str) -> str:
        return self.items_base + session_id

    async def append_items(
        self,
        session_id: str,
        items: Sequence[bytes],
        *,
        payload: bytes,
        size: int,
        replace_payload: bool = False,
        must_exist: bool = False,
    ) -> int | None:
        lim = self.limits
        mode = "update" if must_exist else "set" if replace_payload else "keep"
        fixed = (
            session_id,
            lim.ttl_us,
            lim.lifetime_us,
            lim.max_sessions or 0,
            lim.max_memory or 0,
            self.session_base,
            mode,
            payload,
            size,
            secrets.token_urlsafe(9),
            WRITE_EVICTION_BUDGET,
        )
        reply = await self._run("items_add", self._keys(session_id), (*fixed, 0, *items))
        if int(reply[0]) == 3:  # over a cap: again, declaring the sessions it may remove
            others = [v.decode() if isinstance(v, bytes) else v for v in reply[1]]
            scores = list(reply[2])
            args = (*fixed, len(scores), *scores, *items)
            reply = await self._run("items_add", self._keys(session_id, *others), args)
        status = int(reply[0])
        if status < 0:
            raise PayloadTooLarge(size, lim.max_memory or 0)
        if status == 0:
            return None
        return int(reply[3])

    async def read_items(
        self,
        session_id: str,
        limit: int | None = None,
        *,
        with_payload: bool = False,
        renew: bool = True,
    ) -> StoredItems | None:
        lim = self.limits
        reply = await self._run(
            "items_read",
            self._keys(session_id),
            (
                session_id,
                lim.ttl_us,
                lim.lifetime_us,
                self.session_base,
                -1 if limit is None or limit < 0 else limit,
                1 if with_payload else 0,
                1 if renew else 0,
            ),
        )
        if not reply:
            return None
        payload = unwrap(reply[0])[1] if with_payload else None
        return StoredItems(list(reply[3]), payload, int(reply[1]), int(reply[2]), int(reply[4]))

    async def pop_item(self, session_id: str) -> bytes | None:
        lim = self.limits
        args = (
            session_id,
            lim.ttl_us,
            lim.lifetime_us,
            self.session_base,
            secrets.token_urlsafe(9),
        )
        reply = await self._run("items_pop", self._keys(session_id), args)
        return reply if isinstance(reply, bytes) else None
