"""An estimate of what one session costs in Redis, kept in the index for ``max_memory``.

Asking Redis (``MEMORY USAGE``) on every write would double the round trips, so
each write carries an estimate computed here from the key and value lengths, and
the store keeps the per-session figures and their running total next to the index.

The model, fitted against Valkey 8 ``MEMORY USAGE`` for string keys (embedded key
and value in one allocation, 16-byte allocator granularity), is::

    key_bytes   = align16(len(key) + len(value) + KEY_OVERHEAD_BYTES)
    index_bytes = INDEX_OVERHEAD_BYTES + 2 * len(session_id)   # 2 sorted sets + 1 hash field

Over keys of 30..135 bytes and values of 1..3000 bytes the key part is within 17 %
of ``MEMORY USAGE`` for every key and within 2 % on average; the integration tests
and ``bench/sessions.py`` measure it again against the running server.
"""

from __future__ import annotations

KEY_OVERHEAD_BYTES = 40
"""Object header, SDS headers and the expire field, as fitted against Valkey 8."""

INDEX_OVERHEAD_BYTES = 184
"""Per-session cost of two skiplist sorted-set entries and one hash field, besides the id
(measured: 229 bytes per session with 22-byte ids over 5000 sessions on Valkey 8)."""

VALUE_HEADER_BYTES = 33
"""The header each stored value starts with: ``~<version>:<birth us>:<write token>\n``
(33 bytes while the version has one digit; a longer version adds a byte or two)."""

_ALIGN = 16


def _align(size: int) -> int:
    return (size + _ALIGN - 1) // _ALIGN * _ALIGN


def estimate_key_bytes(key_length: int, value_length: int) -> int:
    """Estimated ``MEMORY USAGE`` of one session key holding a string value."""
    if key_length < 0 or value_length < 0:
        raise ValueError("lengths must not be negative")
    return _align(key_length + value_length + KEY_OVERHEAD_BYTES)


def estimate_index_bytes(session_id_length: int) -> int:
    """Estimated cost of one session's entries in the index structures."""
    return INDEX_OVERHEAD_BYTES + 2 * session_id_length


def estimate_session_bytes(key_length: int, value_length: int, session_id_length: int) -> int:
    """What the store accounts for one session against ``max_memory``."""
    return estimate_key_bytes(key_length, value_length) + estimate_index_bytes(session_id_length)


def error_pct(estimated: int, measured: int) -> float:
    """Relative error of an estimate against a measurement, in percent."""
    if measured <= 0:
        raise ValueError("measured size must be positive")
    return abs(estimated - measured) * 100.0 / measured
