"""The cleanup CronJob of a SessionPolicy, as a pure function of the policy.

The pod runs the operator's own image with `hourglass cleanup`. The Redis URL reaches
it through `secretKeyRef`, so the operator never reads a Secret. The CronJob carries a
hash of what we rendered, so that a re-sync compares one annotation instead of a spec
the API server has filled with defaults.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from agent_lib.config.bundle import CONFIG_KEY, CONFIGMAP_NAME
from agent_lib.config.session_config import SessionPolicy
from agent_lib.sessions.store_url import SOURCE_VARIABLE as URL_SOURCE_VARIABLE

CRONJOB_NAME = "hourglass-cleanup"
SPEC_HASH_ANNOTATION = "hourglass.dev/spec-hash"
POLICY_LABEL = "hourglass.dev/policy"
CONFIG_DIR = "/etc/hourglass"
TERMINATION_LOG = "/dev/termination-log"
RUN_AS = 65532
SUCCESSFUL_HISTORY = 3
FAILED_HISTORY = 3
BACKOFF_LIMIT = 2
ACTIVE_DEADLINE_S = 900
STARTING_DEADLINE_S = 300
TTL_AFTER_FINISHED_S = 3600

LABELS = {
    "app.kubernetes.io/name": "hourglass",
    "app.kubernetes.io/component": "cleanup",
    "app.kubernetes.io/managed-by": "hourglass-operator",
}


MAX_LABEL_VALUE = 63


def policy_label(name: str) -> str:
    """The SessionPolicy's name as a label value: object names may be longer than 63."""
    if len(name) <= MAX_LABEL_VALUE:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[: MAX_LABEL_VALUE - 17].rstrip('.-')}-{digest}"


def cleanup_command(namespace: str) -> list[str]:
    return [
        "hourglass",
        "cleanup",
        "--namespace",
        namespace,
        "--policy",
        f"{CONFIG_DIR}/{CONFIG_KEY}",
        "--json",
    ]


def build_cronjob(
    policy: SessionPolicy,
    namespace: str,
    owner: Mapping[str, str],
    image: str,
    *,
    pull_secrets: Sequence[str] = (),
) -> dict[str, Any]:
    """The CronJob `hourglass-cleanup` for ``policy`` in ``namespace``, owned by it."""
    labels = {**LABELS, POLICY_LABEL: policy_label(policy.name)}
    container: dict[str, Any] = {
        "name": "cleanup",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": cleanup_command(namespace),
        "env": _env(policy),
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        **({"imagePullSecrets": [{"name": n} for n in pull_secrets]} if pull_secrets else {}),
        "containers": [container],
        "volumes": [{"name": "config", "configMap": {"name": CONFIGMAP_NAME}}],
    }
    spec: dict[str, Any] = {
        "schedule": policy.spec.cleanup.schedule,
        "suspend": policy.spec.cleanup.suspend,
        **({"timeZone": policy.spec.cleanup.time_zone} if policy.spec.cleanup.time_zone else {}),
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": STARTING_DEADLINE_S,
        "successfulJobsHistoryLimit": SUCCESSFUL_HISTORY,
        "failedJobsHistoryLimit": FAILED_HISTORY,
        "jobTemplate": {
            "metadata": {"labels": labels},
            "spec": {
                "backoffLimit": BACKOFF_LIMIT,
                "activeDeadlineSeconds": ACTIVE_DEADLINE_S,
                "ttlSecondsAfterFinished": TTL_AFTER_FINISHED_S,
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
        },
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": CRONJOB_NAME,
            "namespace": namespace,
            "labels": labels,
            "annotations": {SPEC_HASH_ANNOTATION: spec_hash(spec, labels, owner)},
            "ownerReferences": [
                {
                    "apiVersion": owner["apiVersion"],
                    "kind": owner["kind"],
                    "name": owner["name"],
                    "uid": owner["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def spec_hash(spec: Mapping[str, Any], labels: Mapping[str, str], owner: Mapping[str, str]) -> str:
    text = json.dumps([spec, labels, owner.get("uid")], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _env(policy: SessionPolicy) -> list[dict[str, Any]]:
    ref = policy.spec.store.url_secret_ref
    if ref is None:
        return []
    return [
        {
            "name": "REDIS_URL",
            "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key, "optional": False}},
        },
        # Where the URL came from, for `hourglass cleanup`'s errors (never the value).
        {"name": URL_SOURCE_VARIABLE, "value": url_source_label(ref.name, ref.key)},
    ]


def url_source_label(secret: str, key: str) -> str:
    """How a bad URL's error names its origin in the cleanup pod's log."""
    return f"REDIS_URL (Secret {secret}, key {key}, from spec.store.urlSecretRef)"
