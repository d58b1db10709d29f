"""Run the OpenAI Agents SDK's own session scenarios against HourglassSession.

Downloads the sdist of the installed openai-agents version with pip (its tests ship in
it), unpacks it to a temporary folder and runs the scenarios that apply to any session
store, with the session class substituted by .ci/_hourglass_sdk_plugin.py, against a
real valkey-server. Nothing of the SDK's test code is kept in this repository.

    .venv/bin/python .ci/openai_agents_sdk_sessions.py [extra pytest args]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

# Scenarios that apply to any Session: Runner integration over run, run_sync and
# run_streamed, isolation, limit, pop (also from empty), unicode and JSON-hostile
# strings, concurrent access, TTL, session settings. Left out: SQLite- and
# redis-py-internal tests (connections, pools, WATCH retries, key layout, compaction).
SCENARIOS = {
    "tests/memory/test_session.py": [
        "test_session_memory_basic_functionality_parametrized",
        "test_session_memory_with_explicit_instance_parametrized",
        "test_session_memory_disabled_parametrized",
        "test_session_memory_different_sessions_parametrized",
        "test_sqlite_session_memory_direct",
        "test_sqlite_session_memory_pop_item",
        "test_session_memory_pop_different_sessions",
        "test_sqlite_session_get_items_with_limit",
        "test_session_memory_appends_list_input_by_default",
        "test_session_callback_prepared_input",
        "test_session_callback_repeating_history_does_not_grow_session",
        "test_sqlite_session_unicode_content",
        "test_sqlite_session_special_characters_and_sql_injection",
        "test_sqlite_session_concurrent_access",
        "test_get_items_uses_session_settings_limit",
        "test_get_items_explicit_limit_overrides_session_settings",
        "test_runner_with_session_settings_override",
    ],
    "tests/extensions/memory/test_redis_session.py": [
        "test_runner_integration",
        "test_session_isolation",
        "test_get_items_with_limit",
        "test_pop_from_empty_session",
        "test_add_empty_items_list",
        "test_unicode_content",
        "test_special_characters_and_json_safety",
        "test_data_integrity_with_problematic_strings",
        "test_concurrent_access",
        "test_ttl_functionality",
        "test_get_items_uses_session_settings_limit",
        "test_get_items_explicit_limit_overrides_session_settings",
        "test_runner_with_session_settings_override",
    ],
}


def _sdist(workdir: Path) -> Path:
    wanted = version("openai-agents")
    subprocess.run(  # noqa: S603 - fixed argument list, no shell
        [sys.executable, "-m", "pip", "download", "-q", f"openai-agents=={wanted}",
         "--no-deps", "--no-binary", ":all:", "-d", str(workdir)],
        check=True,
    )  # fmt: skip
    (archive,) = workdir.glob("openai_agents-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    return workdir / archive.name.removesuffix(".tar.gz")


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory(prefix="openai-agents-sdist-") as tmp:
        source = _sdist(Path(tmp))
        selected = [f"{path}::{name}" for path, names in SCENARIOS.items() for name in names]
        env = dict(os.environ, PYTHONPATH=str(here))
        command = [sys.executable, "-m", "pytest", "-p", "_hourglass_sdk_plugin",
                   "-p", "no:cacheprovider", "-q", *selected, *argv]  # fmt: skip
        outcome = subprocess.run(command, cwd=source, env=env, check=False)  # noqa: S603
        return outcome.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
