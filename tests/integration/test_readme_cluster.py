"""The README's cluster install, exactly as written, on a fresh real control plane.

Each block under ``<!-- cluster: ... -->`` in README.md runs on a control plane of its
own, started empty for the test (no CRDs, no namespaces: what a new cluster has). The
session's shared control plane cannot serve here, since its fixture installs the CRDs
first, which is how the old README's mistake went unnoticed.

The kubectl block runs verbatim in bash, with the real kubectl. For the Helm block there
is no helm binary here and helm-python-sdk exposes the engine's render, not its install
action; so the test parses the README's command, renders the chart with the Helm engine
from the values file it names, and applies what ``helm install`` applies, in Helm's
order (``crds/`` first, as they are; then the release's templates), with the real
kubectl and server-side validation.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controlplane._run import ControlPlane
from tests.fixtures.controlplane import RealCluster, kubectl_binary
from tests.fixtures.k8s_schemas import CHART

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(300)


def readme_block(label: str) -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- cluster: {label} -->\n```bash\n(.*?)```", readme, re.S)
    assert found, f"README.md has no `<!-- cluster: {label} -->` block"
    return found.group(1)


@pytest.fixture
def fresh_cluster(control_plane: ControlPlane) -> Iterator[RealCluster]:
    """A control plane of its own, with nothing installed."""
    state = Path(tempfile.mkdtemp(prefix="hourglass-fresh-cp-"))
    plane = ControlPlane(control_plane.bin_dir, state).start()
    try:
        workdir = state / "work"
        workdir.mkdir()
        yield RealCluster(plane, workdir)
    finally:
        plane.stop()


def test_the_readme_kubectl_install_works_on_a_fresh_cluster(fresh_cluster: RealCluster) -> None:
    block = readme_block("kubectl")
    assert "kubectl apply -k manifests/crds/" in block
    path = f"{Path(kubectl_binary()).parent}{os.pathsep}{os.environ['PATH']}"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=REPO,
        env={**os.environ, "KUBECONFIG": str(fresh_cluster.kubeconfig), "PATH": path},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Error" not in result.stderr, result.stderr
    assert fresh_cluster.get("clusterkopfpeerings", None, "hourglass") is not None
    assert fresh_cluster.get("deployments", "hourglass-system", "hourglass-operator")
    profiles = {p["metadata"]["name"] for p in fresh_cluster.list("timeoutprofiles", "agents-prod")}
    assert profiles == {"base", "interactive", "batch"}
    assert "timeoutprofile.hourglass.dev/interactive" in result.stdout  # `kubectl get tp,sp`


def _helm_install(block: str) -> dict[str, Any]:
    """The README's ``helm install`` command, parsed: release, chart, namespace, values."""
    words = shlex.split(block.replace("\\\n", " "), comments=True)
    assert words[:2] == ["helm", "install"], words
    release, chart = words[2], words[3]
    options = words[4:]
    namespace = options[options.index("-n") + 1]
    values = options[options.index("-f") + 1]
    return {
        "release": release,
        "chart": REPO / chart,
        "namespace": namespace,
        "create_namespace": "--create-namespace" in options,
        "values": REPO / values,
    }


def test_the_readme_helm_install_works_on_a_fresh_cluster(
    fresh_cluster: RealCluster, tmp_path: Path
) -> None:
    import helm_python as helm

    command = _helm_install(readme_block("helm"))
    assert command["chart"] == CHART and command["create_namespace"]
    namespace = command["namespace"]
    values = yaml.safe_load(command["values"].read_text(encoding="utf-8"))
    with helm.Chart.load(command["chart"]) as chart:
        rendered = chart.render(
            values, name=command["release"], namespace=namespace, is_install=True
        )
    documents = [
        doc
        for name, text in rendered.items()
        if name.endswith((".yaml", ".yml")) and "/tests/" not in name
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    # No Prometheus operator here: its kinds are the only ones a fresh cluster cannot take.
    unserved = {"ServiceMonitor", "PrometheusRule"}
    release = [d for d in documents if d["kind"] not in unserved]
    crds = [
        d
        for p in sorted(Path(command["chart"], "crds").rglob("*.yaml"))
        for d in yaml.safe_load_all(p.read_text(encoding="utf-8"))
        if d
    ]
    (tmp_path / "crds.yaml").write_text(yaml.safe_dump_all(crds), encoding="utf-8")
    (tmp_path / "release.yaml").write_text(yaml.safe_dump_all(release), encoding="utf-8")

    fresh_cluster.kubectl("create", "namespace", namespace)  # --create-namespace
    fresh_cluster.kubectl("apply", "-f", str(tmp_path / "crds.yaml"))
    fresh_cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    out = fresh_cluster.kubectl("apply", "-n", namespace, "-f", str(tmp_path / "release.yaml"))
    assert "Error" not in out, out
    profiles = {p["metadata"]["name"] for p in fresh_cluster.list("timeoutprofiles", namespace)}
    assert profiles == set(values["timeoutProfiles"])
    assert fresh_cluster.list("sessionpolicies", namespace)
    assert any(d["kind"] == "Deployment" for d in release)
