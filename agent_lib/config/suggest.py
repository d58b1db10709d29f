"""'Did you mean ...?': the closest known name to a misspelled one, as kubectl suggests."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

_CUTOFF = 0.6


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name most like ``name`` (case-insensitive), if any is close enough."""
    by_lower = {k.lower(): k for k in known}
    match = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=_CUTOFF)
    return by_lower[match[0]] if match else None


def did_you_mean(name: str, known: Iterable[str], *, list_all: bool = False) -> str:
    """``"; did you mean 'x'?"``, or with ``list_all`` the known names when none is close.

    Empty when there is nothing useful to add.
    """
    names = sorted(set(known))
    match = closest(name, names)
    if match is not None and match != name:
        return f"; did you mean {match!r}?"
    if list_all and names:
        return f"; known: {', '.join(names)}"
    return ""
