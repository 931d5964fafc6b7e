"""The simulator passes the centre contract (time stepped, nothing sleeps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.centres.base import CentreAdapter
from scheduler.centres.sim import SimCentre
from tests.scheduler.centres.contract import CentreContract


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


class TestSimCentre(CentreContract):
    @pytest.fixture
    def centre(self, tmp_path: Path) -> SimCentre:
        return SimCentre("SIM-A", tmp_path / "area", cpus=8, clock=Clock())

    @pytest.fixture
    def dead_centre(self, tmp_path: Path) -> SimCentre:
        return SimCentre("SIM-DOWN", tmp_path / "dead", down=True)

    async def advance(self, centre: CentreAdapter) -> None:
        assert isinstance(centre, SimCentre) and isinstance(centre.clock, Clock)
        centre.clock.t += 0.5


def test_refusing_sim_centre_names_its_reason(tmp_path: Path) -> None:
    import asyncio

    from scheduler.centres.base import CentreRefused
    from tests.scheduler.centres.contract import job

    c = SimCentre("SIM-R", tmp_path, refuse="partition batch is closed")
    with pytest.raises(CentreRefused, match="SIM-R: partition batch is closed"):
        asyncio.run(c.submit(job("x.1")))
    assert c.submits == 0
