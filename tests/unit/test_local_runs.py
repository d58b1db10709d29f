"""`hourglass local` serves only the inputs of its own run, across edits and restarts.

A model-based test of `LocalRuntime.reload` (the render-and-publish step; the real
renderer, the real atomic swap into a real folder): runs come and go on one state
folder, each editing its spec file with valid and invalid profiles. Whatever happened
before, a run serves the last valid render of *its own* inputs, or nothing.

On the code before issue 28 it fails with the shrunk example
``edit(valid=True), edit(valid=False), new_run()``: the new run, whose first render
failed, adopted what the previous run had published and served it ("invalid edit
(kept ...)"); and the very first failed render was called an "invalid edit".
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from agent_lib.config import parse_config
from hourglass_cli._local_runtime import LocalOptions, LocalRuntime
from hourglass_cli._local_status import LocalStatus


class _Quiet:
    """The view, reduced to what the test reads: the events the runtime reports."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def event(self, message: str, *, error: bool = False) -> None:
        self.events.append(message)

    def refresh(self) -> None:
        return None

    def close(self) -> None:
        return None


def _profile(llm_call: str) -> str:
    return (
        "apiVersion: hourglass.dev/v1alpha1\nkind: TimeoutProfile\n"
        "metadata:\n  name: base\n  namespace: local\nspec:\n  default: true\n"
        f"  timeouts:\n    llmCall: {llm_call}\n"
    )


class LocalRuns(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="hg-local-runs-"))
        self.specs = self.root / "specs"
        self.specs.mkdir()
        self.options = LocalOptions(
            paths=(str(self.specs),),
            state_dir=self.root / "state",
            namespace=None,
            redis_url=None,
        )
        self.expected: int | None = None  # llmCall of this run's last valid render
        self.last_failed = False
        self._start()

    def _start(self) -> None:
        self.view = _Quiet()
        self.runtime = LocalRuntime(self.options, LocalStatus(config_dir="c"), self.view)
        self.expected = None
        self._reload()

    def _reload(self) -> None:
        text = (self.specs / "p.yaml").read_text() if (self.specs / "p.yaml").exists() else ""
        valid = "soon" not in text and text != ""
        published = self.runtime.reload()
        if valid:
            self.expected = int(text.rsplit("llmCall: ", 1)[1].rstrip("s\n"))
        else:
            assert not published
        self.last_failed = not valid

    @rule(valid=st.booleans(), seconds=st.integers(1, 5))
    def edit(self, valid: bool, seconds: int) -> None:
        (self.specs / "p.yaml").write_text(_profile(f"{seconds}s" if valid else "soon"))
        self._reload()

    @rule()
    def new_run(self) -> None:
        """Local mode stopped and started again on the same state folder."""
        self._start()

    @invariant()
    def serves_only_this_runs_last_valid_render(self) -> None:
        rendered = self.runtime.rendered
        if self.expected is None:
            assert rendered is None, self.view.events
            assert self.runtime.status.config_hash in (None, ""), self.view.events
            return
        assert rendered is not None
        assert parse_config(rendered.content).profiles["base"].timeouts["llmCall"] == (
            self.expected
        )
        on_disk = (self.options.config_dir / "hourglass.yaml").read_text()
        assert on_disk == rendered.content

    @invariant()
    def a_failed_first_render_is_not_called_an_edit(self) -> None:
        if self.last_failed and self.expected is None:
            assert self.view.events[-1].startswith("render failed:"), self.view.events

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


LocalRuns.TestCase.settings = settings(
    max_examples=40, stateful_step_count=10, deadline=None, database=None
)
TestLocalRuns = LocalRuns.TestCase
