"""A real admission refusal for the operator's writes, in one namespace only.

A ValidatingAdmissionPolicy (enforced by the real kube-apiserver) refuses the
operator's CREATE/UPDATE of one resource in one namespace with 422, the way a
platform's policy engine or a quota would; deleting the binding lifts it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import yaml

from tests.fixtures.controlplane import OPERATOR_NS, OPERATOR_SA

OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}"


class Refusal:
    def __init__(
        self, cluster: Any, namespace: str, group: str, resource: str, message: str
    ) -> None:
        self.cluster = cluster
        self.name = f"refuse-{uuid.uuid4().hex[:8]}"
        self.namespace = namespace
        self.message = message
        self._policy = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": self.name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [group],
                            "apiVersions": ["*"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": [resource],
                        }
                    ]
                },
                "matchConditions": [
                    {
                        "name": "the-operator",
                        "expression": f"request.userInfo.username == '{OPERATOR_USER}'",
                    }
                ],
                "validations": [{"expression": "false", "message": message}],
            },
        }
        self._binding = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": self.name},
            "spec": {
                "policyName": self.name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        }

    def on(self) -> Refusal:
        self.cluster.kubectl(
            "apply", "-f", "-", stdin=yaml.safe_dump_all([self._policy, self._binding])
        )
        time.sleep(2)  # the API server's policy informer picks it up
        return self

    def off(self) -> None:
        self.cluster.kubectl(
            "delete",
            "validatingadmissionpolicybinding,validatingadmissionpolicy",
            self.name,
            "--ignore-not-found",
        )

    def refused_calls(self, since: int, resource: str) -> list[dict[str, Any]]:
        """The operator's requests on ``resource`` in the namespace refused with 422."""
        return [
            e
            for e in self.cluster.audited(since=since)
            if (e.get("objectRef") or {}).get("namespace") == self.namespace
            and (e.get("objectRef") or {}).get("resource") == resource
            and e.get("responseStatus", {}).get("code") == 422
        ]
