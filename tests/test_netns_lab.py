from __future__ import annotations

import subprocess

import pytest

from labs.netns import Lab
from tests.conftest import needs_netns


@needs_netns
@pytest.mark.lab
def test_lab_links_namespaces_and_cleans_up_even_on_failure() -> None:
    names: list[str] = []
    with pytest.raises(RuntimeError), Lab("t") as lab:
        a, b = lab.ns("a"), lab.ns("b")
        names = [a.name, b.name]
        lab.link(a, b, "eth0", "eth0", ["10.99.0.1/24"], ["10.99.0.2/24"])
        assert a.run("ping -c1 -W1 10.99.0.2").returncode == 0
        proc = b.popen("sleep 30")
        assert proc.poll() is None
        raise RuntimeError("test failure in the middle")
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(n in listed for n in names)
    assert proc.poll() is not None
