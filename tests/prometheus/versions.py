"""The Prometheus release the test tier builds: one place to bump it.

Prometheus 3.x is published on the module proxy as ``github.com/prometheus/prometheus``
``v0.3xx.y``; v0.316.0 is Prometheus 3.16.0.
"""

from __future__ import annotations

MODULE_VERSION = "v0.316.0"
PROMETHEUS = "3.16.0"
