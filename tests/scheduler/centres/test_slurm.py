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


def test_exit_code_from_wait_status() -> None:
    assert exit_code(768) == 3
    assert exit_code(0) == 0
    assert exit_code(9) == 137  # killed by SIGKILL
