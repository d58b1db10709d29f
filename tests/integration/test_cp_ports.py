"""The test control plane survives a port race (tests/controlplane/_run.py).

`free_port()` finds a port and lets it go; another test or session on the machine can
bind it before kube-apiserver does, which used to fail the whole session's fixture.
"""

from __future__ import annotations

import socket
import ssl
import urllib.request
from pathlib import Path

import pytest

from tests.controlplane._build import cached_bin_dir
from tests.controlplane._run import ControlPlane
from tests.fixtures.controlplane import _unavailable

pytestmark = pytest.mark.timeout(180)


def test_a_port_taken_before_the_bind_is_retried_on_fresh_ports(tmp_path: Path) -> None:
    bin_dir = cached_bin_dir()
    if bin_dir is None:
        _unavailable("the control plane is not built (make controlplane)")
        return
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        plane = ControlPlane(bin_dir, tmp_path / "cp", api_port=taken)
        plane.start()
        try:
            assert plane.api_port != taken
            request = urllib.request.Request(
                f"{plane.url}/readyz", headers={"Authorization": f"Bearer {plane.admin_token}"}
            )
            context = ssl.create_default_context(cafile=str(plane.ca_file))
            context.check_hostname = False
            with urllib.request.urlopen(request, context=context, timeout=5) as response:
                assert response.status == 200
        finally:
            plane.stop()
