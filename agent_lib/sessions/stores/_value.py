"""The header of a stored session value: ``~<version>:<birth us>:<write token>\n``.

Every script that writes a session puts it before the JSON payload (see ``_lua/common.lua``);
readers on this side take it off again. Values written before the header existed start
with the JSON itself and read as version 0.
"""

from __future__ import annotations


def unwrap(value: bytes) -> tuple[int, bytes]:
    """The version and the payload of a stored value (values without a header: version 0)."""
    if value[:1] != b"~":
        return 0, value
    head, _, payload = value.partition(b"\n")
    return int(head[1:].split(b":", 1)[0]), payload


def born(value: bytes) -> int | None:
    """The birth time (us) a value carries; ``None`` for a value without a header."""
    if value[:1] != b"~":
        return None
    return int(value.partition(b"\n")[0].split(b":")[1])
