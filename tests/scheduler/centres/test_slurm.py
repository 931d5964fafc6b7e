"""The Slurm backend passes the centre contract against a real cluster (slurmctld,
slurmd and munged started for this module; LAB-NOTES "Slurm")."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from labs.slurm import SlurmCluster
from scheduler.centres.base import CentreAdapter
from scheduler.centres.slurm import SlurmCentre, exit_code
from tests.scheduler.centres.contract import CentreContract

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0,
                                                  reason="Slurm daemons need root")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    with SlurmCluster("ct", tmp_path_factory.mktemp("slurm"), cpus=2) as c:
        yield c


class TestSlurmCentre(CentreContract):
    @pytest.fixture
    def centre(self, cluster: SlurmCluster) -> SlurmCentre:
        return SlurmCentre("SLURM-A", cluster.conf, cluster.workdir, jobcomp=cluster.jobcomp)

    @pytest.fixture
    def dead_centre(self, cluster: SlurmCluster, tmp_path: Path) -> SlurmCentre:
        # the same cluster's config pointing at a port nothing listens on
        from labs.netns import free_port

        conf = tmp_path / "slurm.conf"
        conf.write_text(cluster.conf.read_text().replace(
            f"SlurmctldPort={cluster.ctld_port}", f"SlurmctldPort={free_port()}"))
        return SlurmCentre("SLURM-DOWN", conf, tmp_path / "work", timeout_s=20)

    async def advance(self, centre: CentreAdapter) -> None:
        await asyncio.sleep(0.3)


@pytest.fixture(scope="module")
def rest_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    with SlurmCluster("cr", tmp_path_factory.mktemp("slurmrest"), cpus=2, rest=True) as c:
        yield c


class TestSlurmRestCentre(CentreContract):
    """The same contract with submit, list and cancel over slurmrestd."""

    @pytest.fixture
    def centre(self, rest_cluster: SlurmCluster) -> SlurmCentre:
        return SlurmCentre("SLURM-R", rest_cluster.conf, rest_cluster.workdir,
                           jobcomp=rest_cluster.jobcomp, rest=rest_cluster.rest,
                           run_as=rest_cluster.run_as)

    @pytest.fixture
    def dead_centre(self, rest_cluster: SlurmCluster, tmp_path: Path) -> SlurmCentre:
        # a socket path nothing listens on
        return SlurmCentre("SLURM-RDOWN", rest_cluster.conf, tmp_path / "work",
                           rest=f"unix:{tmp_path}/none.sock", timeout_s=5)

    async def advance(self, centre: CentreAdapter) -> None:
        await asyncio.sleep(0.3)


def test_rest_submit_after_a_broken_connection_is_not_sent_twice(
        rest_cluster: SlurmCluster) -> None:
    """A kept-alive connection that slurmrestd closed (it does after an error answer)
    is found stale; the submit is looked up by key first and adopted, not resent."""
    from scheduler.centres.slurmrest import Stale
    from tests.scheduler.centres.contract import job

    centre = SlurmCentre("SLURM-R2", rest_cluster.conf, rest_cluster.workdir,
                         rest=rest_cluster.rest, run_as=rest_cluster.run_as)
    assert centre.rest is not None

    async def go() -> None:
        cid = await centre.submit(job("r-stale.1"))
        centre._index.clear()  # as after a restart: only the centre knows the job
        real = centre.rest.call  # type: ignore[union-attr]
        calls: list[str] = []

        async def flaky(method: str, path: str, body: object = None, *,
                        retry: bool = False) -> dict[str, object]:
            calls.append(method)
            if method == "POST" and calls.count("POST") == 1:
                raise Stale("closed before answering")
            return await real(method, path, body, retry=retry)

        centre.rest.call = flaky  # type: ignore[method-assign, union-attr]
        assert await centre.submit(job("r-stale.1")) == cid
        assert calls == ["POST", "GET"]  # looked up, adopted, not resent
        assert [s.centre_id for s in await centre.jobs() if s.key == "r-stale.1"] == [cid]
        await centre.close()
    asyncio.run(go())


def test_exit_code_from_wait_status() -> None:
    assert exit_code(768) == 3
    assert exit_code(0) == 0
    assert exit_code(9) == 137  # killed by SIGKILL


def test_rest_answer_with_controller_down_is_unavailable() -> None:
    """slurmrestd up, slurmctld down: its HTTP 500 names the controller (seen with
    22.05) — the centre is unavailable, not refusing; other errors are refusals."""
    import json

    from scheduler.centres.base import CentreRefused, CentreUnavailable
    from scheduler.centres.slurmrest import SlurmRest

    rest = SlurmRest("DC-X", "unix:/nonexistent")
    down = json.dumps({"errors": [{"error_code": 1800, "error": "Unable to contact slurm "
                                   "controller (connect failure)"}]}).encode()
    with pytest.raises(CentreUnavailable, match="DC-X.*Unable to contact"):
        rest._doc("POST", "/job/submit", 500, down)
    bad = json.dumps({"errors": [{"error": "Invalid partition name specified"}]}).encode()
    with pytest.raises(CentreRefused, match="Invalid partition"):
        rest._doc("POST", "/job/submit", 500, bad)
    assert rest._doc("GET", "/jobs", 200, b'{"jobs": []}') == {"jobs": []}
    with pytest.raises(ValueError, match="unix:/path"):
        SlurmRest("DC-X", "ftp://x")
