"""The releases the test control plane is built from: one place to bump them.

Pairs must be served by the Go module proxy: k8s.io/kubernetes vX.Y.Z with its
staging modules at v0.Y.Z, and an etcd the proxy serves (v1.36's own pin,
v3.6.8, is not served, so the newest 3.6 patch stands in).
"""

from __future__ import annotations

KUBERNETES = "v1.36.3"
STAGING = "v0." + KUBERNETES.removeprefix("v1.")
ETCD = "v3.6.13"
