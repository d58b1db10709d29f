"""Local mode's render step: the spec files in, the operator's ``hourglass.yaml`` out.

This is the same pure function the operator calls (`render_config`); local mode only
decides which namespace the files describe. Documents of other API groups (such as
``monitoring_config.yaml``) are not specs and are skipped by the parser.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from agent_lib.config import (
    Problem,
    RenderedConfig,
    RenderError,
    load_paths,
    parse_documents,
    render_config,
)
from agent_lib.config.bundle import dump_yaml
from agent_lib.config.session_config import SessionPolicy
from agent_lib.config.timeout_profiles import TimeoutProfile

LOCAL_NAMESPACE = "local"


class LocalRenderError(Exception):
    """The spec files cannot be rendered; ``problems`` are ``file:line: ...`` lines."""

    def __init__(self, problems: Sequence[Problem | str]) -> None:
        self.lines = sorted(str(p) for p in problems) or ["no problems given"]
        super().__init__("\n".join(self.lines))


def render_paths(
    paths: Sequence[str], namespace: str | None, exclude: Path | None = None
) -> RenderedConfig:
    """Render the one namespace that the files under ``paths`` describe.

    Documents without a namespace belong to ``namespace`` (``local`` when not
    given). Without ``namespace``, files that all name the same namespace render
    that one; files naming several need ``--namespace`` to pick. Files under
    ``exclude`` (the state folder, when it sits inside a spec folder) are not inputs.
    """
    loaded = load_paths(paths)
    if exclude is not None:
        loaded.documents = [d for d in loaded.documents if not _under(d.file, exclude)]
        loaded.problems = [p for p in loaded.problems if not _under(p.file, exclude)]
    parsed = parse_documents(loaded.documents, default_namespace=namespace or LOCAL_NAMESPACE)
    parsed.problems[:0] = loaded.problems
    if namespace is not None:
        parsed.by_namespace = {ns: r for ns, r in parsed.by_namespace.items() if ns == namespace}
        parsed.problems = [p for p in parsed.problems if p.namespace in ("", namespace)]
    if parsed.problems:
        raise LocalRenderError(parsed.problems)
    found = sorted(parsed.by_namespace)
    if not found:
        raise LocalRenderError([f"no TimeoutProfile or SessionPolicy under {', '.join(paths)}"])
    if len(found) > 1:
        raise LocalRenderError(
            [f"the files describe namespaces {', '.join(found)}: pick one with --namespace"]
        )
    resources = parsed.by_namespace[found[0]]
    try:
        return render_config(
            found[0],
            [r for r in resources if isinstance(r, TimeoutProfile)],
            [r for r in resources if isinstance(r, SessionPolicy)],
        )
    except RenderError as error:
        raise LocalRenderError(error.problems) from None


def _under(file: str, folder: Path) -> bool:
    return bool(file) and Path(file).resolve().is_relative_to(folder)


def profile_hashes(rendered: RenderedConfig) -> dict[str, str]:
    """A short content hash per resolved profile, to show which ones an edit changed."""
    profiles = rendered.config.model_dump(by_alias=True, mode="json")["profiles"]
    return {
        name: hashlib.sha256(dump_yaml(body).encode()).hexdigest()[:8]
        for name, body in sorted(profiles.items())
    }
