"""A small async facade over the `kubernetes` client for the few calls the operator makes.

The `kubernetes` client brings every way of logging in (in-cluster, kubeconfig, exec
plugins); the calls go through its generic `call_api` with plain JSON in and out, run
in a worker thread so that kopf's event loop never blocks. Secrets are never read.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from typing import Any

import kubernetes

from hourglass_operator import __version__
from hourglass_operator.errors import ApiRequestError

USER_AGENT = f"hourglass-operator/{__version__}"
GROUP = "hourglass.dev"
VERSION = "v1alpha1"
MERGE_PATCH = "application/merge-patch+json"
_TIMEOUT = (5.0, 30.0)


def _load_configuration() -> kubernetes.client.Configuration:
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        # $KUBECONFIG is read now, not when `kubernetes` was imported (its default is).
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.environ.get("KUBECONFIG") or None
        )
    configuration: kubernetes.client.Configuration = (
        kubernetes.client.Configuration.get_default_copy()
    )
    return configuration


class Kube:
    """Namespaced JSON calls: ConfigMaps, CronJobs, Pods, and our resources' status."""

    def __init__(self, configuration: kubernetes.client.Configuration | None = None) -> None:
        configuration = configuration or _load_configuration()
        self._client = kubernetes.client.ApiClient(configuration)
        self._client.user_agent = USER_AGENT

    async def get(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """The object at ``path``, or None when it does not exist."""
        return await self._call("GET", path, query=query, missing_ok=True)

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        return await self._call("POST", path, body=body)

    async def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        return await self._call("PATCH", path, body=body, content_type=MERGE_PATCH, missing_ok=True)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        query: Mapping[str, str] | None = None,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        return await asyncio.to_thread(
            self._call_sync, method, path, body, content_type, query, missing_ok
        )

    def _call_sync(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        content_type: str,
        query: Mapping[str, str] | None,
        missing_ok: bool,
    ) -> dict[str, Any] | None:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        params = self._client.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=dict(body) if body is not None else None,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._client.call_api(*params, _request_timeout=_TIMEOUT)
            response.read()  # type: ignore[no-untyped-call]
        except kubernetes.client.ApiException as error:
            raise ApiRequestError(method, path, error.status or 0, str(error.reason)) from None
        if response.status == 404 and missing_ok:
            return None
        if not 200 <= response.status < 300:
            reason = _reason(response.data)
            raise ApiRequestError(method, path, response.status, reason)
        data = json.loads(response.data) if response.data else None
        return data if isinstance(data, dict) else None


def _reason(data: bytes | None) -> str:
    try:
        payload = json.loads(data or b"{}")
    except ValueError:
        return (data or b"").decode("utf-8", "replace")[:200]
    return str(payload.get("message") or payload.get("reason") or "")[:500]


def configmap_path(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    return f"{base}/{name}" if name else base


def cronjob_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/batch/v1/namespaces/{namespace}/cronjobs"
    return f"{base}/{name}" if name else base


def jobs_path(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs"


def pods_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods"


def status_path(plural: str, namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}/{name}/status"
