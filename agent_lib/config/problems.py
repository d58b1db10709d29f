"""A problem in a spec, located for `file:line: kind/name: field: reason` output."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    reason: str
    field: str = ""
    kind: str = ""
    name: str = ""
    namespace: str = ""
    file: str = ""
    line: int = 0

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        where = where if self.file else ""
        what = f"{self.kind}/{self.name}: " if self.kind else ""
        field = f"{self.field}: " if self.field else ""
        return f"{where}{what}{field}{self.reason}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "field": self.field,
            "reason": self.reason,
        }
