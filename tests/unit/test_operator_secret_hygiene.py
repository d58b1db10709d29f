"""No credential the operator is handed ever comes out of it (issue 27, item 1: the
operator's part; the agent's API client is in test_agent_api_secrets.py).

A known secret, inside a ``scheme://user:pass@`` URL, is put in every place of a spec a
policy author can write: values and keys, known fields and unknown ones. Everything the
operator derives from the resources (statuses, Events, the rendered ConfigMap, the
CronJob: the whole plan), the webhook's refusal, ``hourglass validate``'s output and the
logs of all of it are searched for the secret. Before: a URL used as a mapping key (an
unknown field, a timeout's name) came back verbatim in the field path of the refusal.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hourglass_operator.reconcile import plan_namespace
from hourglass_operator.webhook import admission_problems, message_for

from hourglass_cli.main import cli

SECRET = "TOPSECRET-db-password-9f8e"
URLS = [
    f"redis://user:{SECRET}@redis:6379/0",
    f"rediss://:{SECRET}@redis.example:6380",
    f"redis+sentinel://app:{SECRET}@s1:26379/mymaster",
    f"https://u:{SECRET}@hooks.example/x",
]
NS = "agents-dev"


def _resource(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "hourglass.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "r", "namespace": NS, "uid": "uid-r", "generation": 1},
        "spec": spec,
    }


def _places(url: str) -> dict[str, dict[str, Any]]:
    tp, sp = "TimeoutProfile", "SessionPolicy"
    return {
        "store.url": _resource(sp, {"store": {"url": url}}),
        "ttl": _resource(sp, {"ttl": url}),
        "schedule": _resource(sp, {"cleanup": {"schedule": url}}),
        "time zone": _resource(sp, {"cleanup": {"schedule": "0 * * * *", "timeZone": url}}),
        "secret key": _resource(sp, {"store": {"urlSecretRef": {"name": "db", "key": url}}}),
        "unknown field": _resource(sp, {url: 1}),
        "unknown nested field": _resource(sp, {"store": {url: "x"}}),
        "timeout value": _resource(tp, {"default": True, "timeouts": {"llmCall": url}}),
        "timeout name": _resource(tp, {"default": True, "timeouts": {url: "1s"}}),
        "polling": _resource(tp, {"default": True, "polling": {"interval": url}}),
        "list item": _resource(tp, {"default": True, "tags": [url]}),
    }


CASES = [(url, place) for url in URLS for place in _places(url)]


@pytest.mark.parametrize(("url", "place"), CASES)
def test_a_credential_in_a_spec_never_comes_out_of_the_operator(
    url: str, place: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    body = _places(url)[place]
    caplog.set_level(logging.DEBUG)
    plan = plan_namespace(NS, [body], image="registry.test/hg:1", now="T0")
    problems = admission_problems(body)
    assert problems, "a spec with inline credentials must be refused"
    refusal = message_for(problems)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(body))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code != 0
    said = "\n".join([repr(plan), refusal, result.output, caplog.text])
    assert SECRET not in said, said[:2000]
