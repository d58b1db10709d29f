"""Kubernetes resource quantities (``512Mi``, ``1G``, ``1.5Gi``) as whole bytes.

The agent image does not carry the ``kubernetes`` client, so this mirrors
``kubernetes.utils.parse_quantity`` for the suffixes that make sense for memory;
a test checks the two agree.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from agent_lib.errors import ConfigError

_SUFFIXES: dict[str, int] = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
QUANTITY_PATTERN = _QUANTITY.pattern
"""The accepted grammar, for the CRD schema."""


def parse_quantity(value: object, *, field: str = "quantity") -> int:
    """Return ``value`` in bytes (rounded up), or raise `ConfigError` naming ``field``."""
    if isinstance(value, bool):
        raise ConfigError(field, "expected a quantity such as '512Mi' or a number of bytes")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        match = _QUANTITY.fullmatch(value.strip())
        if match is None:
            raise ConfigError(
                field,
                f"{value!r:.40} is not a quantity: use a number with an optional suffix "
                "(Ki, Mi, Gi, Ti, k, M, G, T), such as '512Mi'",
            )
        try:
            number = Decimal(match.group(1)) * _SUFFIXES[match.group(2) or ""]
        except InvalidOperation:
            raise ConfigError(field, f"{value!r:.40} is out of range") from None
    else:
        raise ConfigError(field, f"expected a quantity, got {type(value).__name__}")
    if number <= 0:
        raise ConfigError(field, f"must be positive, got {value!r}")
    return int(number.to_integral_value(rounding="ROUND_CEILING"))
