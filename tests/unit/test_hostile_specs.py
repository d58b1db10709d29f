"""Hostile input against the validator and the render core, property-based (hypothesis).

Each property runs a fixed number of generated cases (``max_examples``); how many ran is
counted and printed in the terminal summary, and the totals are in docs/reliability.md.
Nothing here is timed by the wall clock: pytest-timeout bounds the slow-looking cases,
so a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import contextlib
import math
import random
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes.utils import parse_quantity as k8s_parse_quantity

from agent_lib.config import (
    RenderError,
    SessionPolicy,
    SourceDocument,
    TimeoutProfile,
    load_paths,
    load_text,
    parse_config,
    parse_documents,
    render_config,
)
from agent_lib.config.inheritance import DEFAULT_POLLING
from agent_lib.config.specs import KINDS
from agent_lib.durations import MAX_DURATION_SECONDS, format_duration, parse_duration
from agent_lib.errors import ConfigError
from agent_lib.quantity import parse_quantity
from hourglass_cli.main import cli
from tests.unit._helpers import report_case_counts

NAMESPACE = "agents-test"
API = "hourglass.dev/v1alpha1"
CASES: Counter[str] = Counter()
"""How many generated cases each property ran (and how many specs were accepted)."""


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module", autouse=True)
def _report_cases(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report_case_counts(request, "hypothesis cases run", CASES, " accepted")


# --- strategies: valid-ish fields mixed with garbage ----------------------------------

GARBAGE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
NAMES = st.sampled_from(["base", "dev", "prod", "child", "p-1", "a.b"])
BAD_NAMES = st.sampled_from(["", "Base", "a_b", "-x", "x" * 300, "a b", "*", "{tag}", "é"])
UNITS = st.sampled_from(["ns", "us", "µs", "ms", "s", "m", "h", "d"])
DURATION_TEXT = st.one_of(
    st.builds(lambda n, u: f"{n}{u}", st.integers(0, 5000), UNITS),
    st.builds(lambda a, b: f"{a}m{b}s", st.integers(0, 90), st.integers(0, 90)),
    st.builds(lambda n, f: f"{n}.{f}s", st.integers(0, 100), st.integers(0, 999)),
    st.integers(0, 10**7).map(str),
)
DURATION = st.one_of(
    DURATION_TEXT,
    DURATION_TEXT,
    st.integers(-10, 4 * 10**6),
    st.floats(min_value=-1.0, max_value=4e6) | st.sampled_from([math.nan, math.inf]),
    st.sampled_from(["", "10x", "1m 30s", "-5s", "31d", "1e3", "redis://u:p@h:6379"]),
    GARBAGE,
)
TIMEOUT_NAMES = st.one_of(
    st.sampled_from(["request", "connect", "llmCall", "toolCall", "sessionIdle"]),
    st.from_regex(r"[a-z][a-zA-Z0-9]{0,12}", fullmatch=True),
    st.text(max_size=10),
)
QUANTITY_TEXT = st.builds(
    lambda n, s: f"{n}{s}",
    st.integers(1, 10**6),
    st.sampled_from(["", "k", "M", "G", "Ki", "Mi", "Gi", "Ti"]),
)


def _pick(
    draw: st.DrawFn,
    hostile: bool,
    value: st.SearchStrategy[Any],
    garbage: st.SearchStrategy[Any] = GARBAGE,
) -> Any:
    """``value`` in a plausible document; in a hostile one, garbage one time in three."""
    return draw(st.one_of(value, value, garbage) if hostile else value)


PLAUSIBLE_DURATION = st.one_of(
    st.builds(lambda n, u: f"{n}{u}", st.integers(1, 999), st.sampled_from(["ms", "s", "m"])),
    st.builds(lambda a, b: f"{a}m{b}s", st.integers(1, 90), st.integers(0, 59)),
    st.integers(1, 86400),
    st.floats(min_value=0.001, max_value=86400.0),
)
PLAUSIBLE_TIMEOUT_NAMES = st.sampled_from(
    ["request", "connect", "llmCall", "toolCall", "sessionIdle"]
) | st.from_regex(r"[a-z][a-zA-Z0-9]{0,12}", fullmatch=True)
# Plausible polling is ordered (interval <= maxInterval <= maxDuration) by construction,
# also against the defaults it is merged over.
PLAUSIBLE_POLLING = {
    "interval": st.sampled_from(["100ms", "250ms", "500ms", "1s", 2, "2.5s"]),
    "maxInterval": st.sampled_from(["5s", "10s", 30, "1m"]),
    "multiplier": st.floats(min_value=1.0, max_value=100.0),
    "jitter": st.floats(min_value=0.0, max_value=1.0),
    "maxDuration": st.sampled_from(["1m", "5m", "10m", 600, "1h"]),
}


@st.composite
def polling_specs(draw: st.DrawFn, hostile: bool) -> dict[str, Any]:
    if not hostile:
        fields = PLAUSIBLE_POLLING
    else:
        fields = {
            "interval": DURATION,
            "maxInterval": DURATION,
            "multiplier": st.floats(min_value=0.5, max_value=120.0) | GARBAGE,
            "jitter": st.floats(min_value=-0.5, max_value=1.5) | GARBAGE,
            "maxDuration": DURATION,
        }
    return {key: draw(strategy) for key, strategy in fields.items() if draw(st.booleans())}


@st.composite
def profile_documents(
    draw: st.DrawFn,
    name: str | None = None,
    parents: tuple[str, ...] = (),
    hostile: bool | None = None,
) -> dict[str, Any]:
    """A TimeoutProfile; ``parents`` are the names ``extends`` may point at."""
    hostile = draw(st.booleans()) if hostile is None else hostile
    durations = DURATION if hostile else PLAUSIBLE_DURATION
    names = TIMEOUT_NAMES if hostile else PLAUSIBLE_TIMEOUT_NAMES
    spec: dict[str, Any] = {}
    if draw(st.integers(0, 7)) == 0:
        spec["default"] = _pick(draw, hostile, st.just(True))
    if parents and draw(st.integers(0, 2)):
        spec["extends"] = _pick(draw, hostile, st.sampled_from(parents), BAD_NAMES | NAMES)
    spec["timeouts"] = _pick(draw, hostile, st.dictionaries(names, durations, max_size=6))
    if draw(st.booleans()):
        spec["polling"] = _pick(draw, hostile, polling_specs(hostile))
    if hostile and draw(st.integers(0, 5)) == 0:
        spec[draw(st.text(max_size=8))] = draw(GARBAGE)
    name = name if name is not None else draw(NAMES)
    return _document("TimeoutProfile", name, spec, draw, hostile)


@st.composite
def policy_documents(draw: st.DrawFn, hostile: bool | None = None) -> dict[str, Any]:
    hostile = draw(st.booleans()) if hostile is None else hostile
    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        store: dict[str, Any] = {}
        if draw(st.booleans()):
            prefix = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True)
            store["keyPrefix"] = _pick(draw, hostile, prefix, st.text(max_size=70))
        if draw(st.booleans()):
            ref = st.fixed_dictionaries({"name": NAMES, "key": st.just("url")})
            store["urlSecretRef"] = _pick(draw, hostile, ref)
        spec["store"] = _pick(draw, hostile, st.just(store))
    if draw(st.booleans()):
        spec["ttl"] = draw(DURATION if hostile else st.integers(1, 3600) | st.just("30m"))
    if draw(st.booleans()):
        lifetime = st.sampled_from(["1h", "2h", "24h", "7d", "30d", 86400])
        spec["maxLifetime"] = draw(DURATION if hostile else lifetime)
    if draw(st.booleans()):
        spec["maxSessions"] = _pick(draw, hostile, st.integers(1, 10**6), st.integers(-5, 10**9))
    if draw(st.booleans()):
        memory = _pick(draw, hostile, QUANTITY_TEXT, st.text(max_size=8) | GARBAGE)
        spec["maxMemory"] = memory
    if draw(st.booleans()):
        cleanup = {
            "schedule": st.sampled_from(["*/5 * * * *", "0 3 * * *"])
            | (st.sampled_from(["@hourly", "x y", "61 * * * *"]) if hostile else st.nothing()),
            "batchSize": st.integers(1, 10_000)
            | (st.integers(-1, 20_000) if hostile else st.nothing()),
            "suspend": st.booleans(),
        }
        spec["cleanup"] = _pick(draw, hostile, st.fixed_dictionaries({}, optional=cleanup))
    return _document("SessionPolicy", draw(NAMES), spec, draw, hostile)


def _document(kind: str, name: str, spec: Any, draw: st.DrawFn, hostile: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "apiVersion": _pick(draw, hostile, st.just(API), st.sampled_from(["hourglass.dev/v2", 7])),
        "kind": _pick(draw, hostile, st.just(kind), st.sampled_from(["ConfigMap", "", "Profile"])),
        "metadata": {"name": _pick(draw, hostile, st.just(name), BAD_NAMES)},
        "spec": spec,
    }
    if hostile and draw(st.integers(0, 5)) == 0:
        document[draw(st.sampled_from(sorted(document)))] = draw(GARBAGE)
    return document


@st.composite
def namespaces(draw: st.DrawFn) -> list[Any]:
    """One namespace's documents: half the time all plausible, else some hostile ones."""
    clean = draw(st.booleans())
    names = draw(st.lists(NAMES, unique=True, max_size=5))
    documents: list[Any] = []
    for index, name in enumerate(names):
        hostile = False if clean else draw(st.booleans())
        documents.append(draw(profile_documents(name, tuple(names[:index]), hostile)))
    for _ in range(draw(st.integers(0, 1 if clean else 2))):
        documents.append(draw(policy_documents(False if clean else None)))
    if not clean:
        documents.extend(draw(st.lists(GARBAGE, max_size=2)))
    if not documents:
        documents.append(draw(policy_documents(False)))
    return draw(st.permutations(documents))


NAMESPACE_DOCUMENTS = namespaces()


# --- oracle: what resolution must give, computed independently -----------------------


def _root_first(raw: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    """The specs on the ``extends`` chain of ``name``, from the root down to ``name``."""
    chain: list[Mapping[str, Any]] = []
    current: str | None = name
    while current is not None:
        spec = raw[current].get("spec", {})
        chain.append(spec)
        current = spec.get("extends")
    return chain[::-1]


def _expected_timeouts(raw: Mapping[str, Any], name: str) -> dict[str, float]:
    """Walk ``extends`` to the root and merge each level's timeouts over its parent's."""
    merged: dict[str, float] = {}
    for spec in _root_first(raw, name):
        merged.update({k: parse_duration(v) for k, v in spec.get("timeouts", {}).items()})
    return merged


def _expected_polling(raw: Mapping[str, Any], name: str) -> dict[str, float]:
    merged = dict(DEFAULT_POLLING)
    for spec in _root_first(raw, name):
        for key, value in (spec.get("polling") or {}).items():
            timed = key in ("interval", "maxInterval", "maxDuration")
            merged[key] = parse_duration(value) if timed else float(value)
    return merged


def _check_round_trip(documents: list[Any], label: str) -> None:
    parsed = parse_documents([SourceDocument(d) for d in documents], default_namespace=NAMESPACE)
    resources = parsed.by_namespace.get(NAMESPACE, [])
    profiles = [r for r in resources if isinstance(r, TimeoutProfile)]
    policies = [r for r in resources if isinstance(r, SessionPolicy)]
    if parsed.problems or not resources:
        return
    CASES[f"{label} accepted"] += 1
    rendered = render_config(NAMESPACE, profiles, policies)
    shuffled = render_config(NAMESPACE, reversed(profiles), reversed(policies))
    assert shuffled.content == rendered.content, "rendering depends on input order"
    config = parse_config(rendered.content)
    assert config == rendered.config
    raw = {
        d["metadata"]["name"]: d
        for d in documents
        if isinstance(d, dict) and d.get("apiVersion") == API and d.get("kind") == "TimeoutProfile"
    }
    assert set(config.profiles) == {p.name for p in profiles}
    for name, profile in config.profiles.items():
        assert profile.timeouts == pytest.approx(_expected_timeouts(raw, name))
        polling = profile.polling.model_dump(by_alias=True)
        assert polling == pytest.approx(_expected_polling(raw, name))
    defaults = [p.name for p in profiles if p.spec.default]
    assert config.default_profile == (defaults[0] if defaults else None)
    if policies:
        _check_policy(policies[0], config.session_policy)


def _check_policy(policy: SessionPolicy, rendered: Any) -> None:
    spec = policy.spec
    assert rendered is not None and rendered.name == policy.name
    assert rendered.ttl == spec.ttl and rendered.max_lifetime == spec.max_lifetime
    assert rendered.max_lifetime >= rendered.ttl
    assert rendered.key_prefix == spec.store.key_prefix
    assert rendered.max_sessions == spec.max_sessions
    expected_bytes = None if spec.max_memory is None else parse_quantity(spec.max_memory)
    assert rendered.max_memory_bytes == expected_bytes
    assert rendered.cleanup.batch_size == spec.cleanup.batch_size


def _check_problems_are_clear(documents: list[Any]) -> None:
    parsed = parse_documents([SourceDocument(d) for d in documents], default_namespace=NAMESPACE)
    for problem in parsed.problems:
        assert problem.reason, problem
        if problem.kind in KINDS:
            assert problem.field, f"no field named: {problem}"
        assert str(problem)


# --- properties -----------------------------------------------------------------------


@_settings(400)
@given(documents=NAMESPACE_DOCUMENTS)
def test_validator_never_crashes_and_accepted_specs_round_trip(documents: list[Any]) -> None:
    CASES["validator: arbitrary namespaces"] += 1
    _check_problems_are_clear(documents)
    _check_round_trip(documents, "validator: arbitrary namespaces")


@st.composite
def inheritance_chains(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Plausible profiles wired into chains and trees through ``extends``."""
    names = [f"p{i}" for i in range(draw(st.integers(1, 7)))]
    documents = []
    for index, name in enumerate(names):
        document = draw(profile_documents(name, tuple(names[:index]), hostile=False))
        document["spec"].pop("default", None)
        documents.append(document)
    return draw(st.permutations(documents))


@_settings(300)
@given(documents=inheritance_chains())
def test_inherited_timeouts_survive_render_and_parse(documents: list[dict[str, Any]]) -> None:
    CASES["inheritance: chains"] += 1
    _check_problems_are_clear(documents)
    _check_round_trip(documents, "inheritance: chains")


@_settings(150)
@given(documents=NAMESPACE_DOCUMENTS)
def test_yaml_text_of_arbitrary_specs_validates_without_crashing(documents: list[Any]) -> None:
    CASES["validator: YAML text"] += 1
    text = yaml.safe_dump_all(documents, allow_unicode=True)
    loaded = load_text(text, "specs.yaml")
    parsed = parse_documents(loaded.documents, default_namespace=NAMESPACE)
    for problem in [*loaded.problems, *parsed.problems]:
        assert problem.file == "specs.yaml" and problem.reason


@_settings(300)
@given(raw=st.binary(max_size=2000) | st.text(max_size=2000))
def test_load_text_never_raises_on_arbitrary_bytes(raw: bytes | str) -> None:
    CASES["loader: arbitrary bytes/text"] += 1
    loaded = load_text(raw, "junk.yaml")
    assert all(p.reason and p.file == "junk.yaml" for p in loaded.problems)
    if loaded.problems:
        with pytest.raises(ConfigError):
            parse_config(raw)
    else:
        with contextlib.suppress(ConfigError):  # valid YAML, but rarely a valid bundle
            parse_config(raw)


@_settings(60)
@given(documents=NAMESPACE_DOCUMENTS)
def test_cli_validate_exit_code_matches_problems(documents: list[Any]) -> None:
    CASES["cli: hourglass validate"] += 1
    text = yaml.safe_dump_all(documents, allow_unicode=True)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "specs.yaml"
        path.write_text(text, encoding="utf-8")
        result = CliRunner().invoke(cli, ["validate", str(path), "--json"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    loaded = load_text(text)
    parsed = parse_documents(loaded.documents, default_namespace="default")
    # nothing read at all is an error too (a CI check pointed at the wrong path)
    failed = loaded.problems or parsed.problems or not parsed.read
    assert result.exit_code == (1 if failed else 0)


# --- durations and quantities ---------------------------------------------------------


@_settings(500)
@given(seconds=st.floats(min_value=1e-6, max_value=MAX_DURATION_SECONDS))
def test_durations_round_trip(seconds: float) -> None:
    CASES["durations: format/parse"] += 1
    text = format_duration(seconds)
    back = parse_duration(text)
    # format_duration keeps milliseconds (microseconds below 1 ms), rounding half to even:
    # an error of exactly half a unit (0.0625 s -> 62ms) is allowed, plus float noise.
    assert back == pytest.approx(seconds, abs=(5e-4 if seconds >= 1e-3 else 5e-7) + 1e-12)
    assert format_duration(back) == text


@_settings(300)
@given(parts=st.lists(st.tuples(st.integers(0, 999), UNITS), min_size=1, max_size=4))
def test_go_style_durations_sum_their_parts(parts: list[tuple[int, str]]) -> None:
    CASES["durations: Go syntax"] += 1
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    units["d"] = 86400
    text = "".join(f"{n}{u}" for n, u in parts)
    expected = sum(n * units[u] for n, u in parts)
    if expected <= 0 or expected > MAX_DURATION_SECONDS:
        with pytest.raises(ConfigError) as caught:
            parse_duration(text, field="spec.timeouts.x")
        assert caught.value.field == "spec.timeouts.x" and caught.value.reason
    else:
        assert parse_duration(text) == pytest.approx(expected)


@_settings(500)
@given(
    number=st.integers(1, 10**12)
    | st.decimals(min_value=Decimal("0.001"), max_value=10**9, places=3),
    suffix=st.sampled_from(["", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]),
)
def test_quantities_agree_with_kubernetes(number: int | Decimal, suffix: str) -> None:
    CASES["quantities: vs kubernetes.utils"] += 1
    text = f"{number}{suffix}"
    expected = k8s_parse_quantity(text)
    assert parse_quantity(text) == math.ceil(expected)


@_settings(300)
@given(text=st.text(max_size=20))
def test_quantity_garbage_is_refused_or_agrees(text: str) -> None:
    CASES["quantities: garbage"] += 1
    try:
        ours = parse_quantity(text, field="spec.maxMemory")
    except ConfigError as error:
        assert error.field == "spec.maxMemory" and error.reason
        return
    assert ours == math.ceil(k8s_parse_quantity(text.strip()))


# --- fixed hostile documents ----------------------------------------------------------


def _billion_laughs(levels: int = 12, width: int = 10) -> str:
    lines = ['a0: &a0 ["' + '","'.join(["lol"] * width) + '"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def _merge_bomb(levels: int = 40) -> str:
    lines = ["m0: &m0 {x: 1}"]
    for i in range(1, levels):
        lines.append(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: 1}}")
    return "\n".join(lines) + "\n"


HOSTILE: dict[str, tuple[bytes | str, str]] = {
    "billion laughs": (_billion_laughs(), "alias bomb"),
    "merge-key bomb": (_merge_bomb(), "alias bomb"),
    "deep flow nesting": ("[" * 200_000, "nested too deeply"),
    "deep block nesting": ("".join(" " * i + "a:\n" for i in range(500)), "nested too deeply"),
    "1 MB flow sequence": ("[" + "1," * 500_000 + "1]", "more than 100000 YAML nodes"),
    "10 MB document": (b"a: " + b"x" * (10 * 1024 * 1024), "the limit is 1 MiB"),
    "10 MB text": ("a: " + "x" * (10 * 1024 * 1024), "over the 1 MiB limit"),
    "binary garbage": (b"\x00" + random.Random(7).randbytes(4096), "binary"),
    "binary without NUL": (bytes(range(1, 256)) * 16, "not UTF-8"),
    "non-UTF-8": ("spec:\n  note: café\n".encode("latin-1"), "not UTF-8"),
    "huge integer": ("a: " + "9" * 5000, "invalid YAML value"),
    "impossible date": ("a: 2001-13-45", "invalid YAML value"),
    "python tag": ("a: !!python/object/apply:os.system ['true']", "invalid YAML"),
    "control characters": ("a: \x07\x1b", "invalid YAML"),
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_documents_are_refused_with_a_clear_message(case: str) -> None:
    raw, message = HOSTILE[case]
    loaded = load_text(raw, "hostile.yaml")
    assert loaded.documents == []
    assert any(message in p.reason for p in loaded.problems), loaded.problems
    assert all(p.file == "hostile.yaml" for p in loaded.problems)
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert message in caught.value.reason


@pytest.mark.timeout(30)
@pytest.mark.parametrize("verb", ["validate", "render"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hourglass_cli_refuses_hostile_files(case: str, verb: str, tmp_path: Path) -> None:
    raw, message = HOSTILE[case]
    path = tmp_path / "hostile.yaml"
    path.write_bytes(raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass"))
    result = CliRunner().invoke(cli, [verb, str(path)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{path}:" in result.output
    expected = "10.5 MB; the limit is 1 MiB" if len(raw) > 10**7 else message
    assert expected in result.output
    assert "Traceback" not in result.output


@pytest.mark.timeout(10)
def test_many_small_documents_within_limits_still_load() -> None:
    text = "".join(
        f"---\napiVersion: {API}\nkind: TimeoutProfile\nmetadata: {{name: p{i}}}\n"
        f"spec: {{timeouts: {{request: {i + 1}s}}}}\n"
        for i in range(500)
    )
    loaded = load_text(text)
    assert loaded.problems == [] and len(loaded.documents) == 500
    parsed = parse_documents(loaded.documents, default_namespace=NAMESPACE)
    assert parsed.problems == []
    profiles = [r for r in parsed.by_namespace[NAMESPACE] if isinstance(r, TimeoutProfile)]
    config = parse_config(render_config(NAMESPACE, profiles).content)
    assert config.profiles["p499"].timeouts["request"] == 500


def test_render_refuses_namespaces_the_validator_refuses() -> None:
    documents = [
        {"apiVersion": API, "kind": "TimeoutProfile", "metadata": {"name": "a"},
         "spec": {"extends": "b"}},
        {"apiVersion": API, "kind": "TimeoutProfile", "metadata": {"name": "b"},
         "spec": {"extends": "a"}},
    ]  # fmt: skip
    parsed = parse_documents([SourceDocument(d) for d in documents], default_namespace=NAMESPACE)
    assert any("inheritance cycle" in p.reason for p in parsed.problems)
    profiles = [r for r in parsed.by_namespace[NAMESPACE] if isinstance(r, TimeoutProfile)]
    with pytest.raises(RenderError) as caught:
        render_config(NAMESPACE, profiles)
    assert all(p.field == "spec.extends" for p in caught.value.problems)


def test_validate_loads_paths_in_a_folder(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(_billion_laughs())
    (tmp_path / "good.yaml").write_text(
        f"apiVersion: {API}\nkind: TimeoutProfile\nmetadata: {{name: ok}}\n"
    )
    loaded = load_paths([tmp_path])
    assert [d.data["metadata"]["name"] for d in loaded.documents] == ["ok"]
    assert len(loaded.problems) == 1 and "alias bomb" in loaded.problems[0].reason
