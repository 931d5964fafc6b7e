"""The one contract every ``CentreAdapter`` backend passes (GBA-6.3; STYLE: one suite,
many backends). A backend's test module subclasses ``CentreContract`` and provides the
``centre`` / ``dead_centre`` fixtures and ``advance`` (step time: a real cluster sleeps,
the simulator moves its clock)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from scheduler.centres.base import (
    ENDED,
    CentreAdapter,
    CentreJob,
    CentreJobState,
    CentreJobStatus,
    CentreRefused,
    CentreUnavailable,
    JobChange,
)
from scheduler.centres.transfer import stage


def job(key: str, command: str = "echo hello; echo 42 > out.txt", *, exit_code: int = 0,
        runtime_s: float = 0.2, cpus: int = 1, walltime_s: float = 120.0,
        inputs: tuple[str, ...] = ()) -> CentreJob:
    """One job both kinds of backend run alike: the simulator takes its exit code and
    runtime from env; a real workload manager runs the command."""
    return CentreJob(key=key, job_id=key.split(".")[0], name=key, command=command,
                     cpus=cpus, walltime_s=walltime_s, outputs=("out.txt",), inputs=inputs,
                     env=(("CPN_SIM_EXIT", str(exit_code)),
                          ("CPN_SIM_RUNTIME_S", str(runtime_s))))


class CentreContract:
    timeout_s = 30.0

    async def advance(self, centre: CentreAdapter) -> None:
        raise NotImplementedError

    def run(self, coro: object) -> object:
        return asyncio.run(coro)  # type: ignore[arg-type]

    async def wait(self, centre: CentreAdapter, key: str,
                   states: frozenset[CentreJobState] = ENDED) -> CentreJobStatus:
        loop = asyncio.get_running_loop()
        end = loop.time() + self.timeout_s
        while True:
            s = await centre.find(key)
            if s is not None and s.state in states:
                return s
            if loop.time() > end:
                raise AssertionError(f"{key} not in {sorted(states)} in time: {s}")
            await self.advance(centre)

    def test_is_a_centre_adapter(self, centre: CentreAdapter) -> None:
        assert isinstance(centre, CentreAdapter)
        assert centre.site and centre.backend

    def test_job_runs_and_results_are_fetched(self, centre: CentreAdapter) -> None:
        async def go() -> None:
            cid = await centre.submit(job("c-ok.1"))
            s = await self.wait(centre, "c-ok.1")
            assert (s.state, s.exit_code, s.centre_id) == (CentreJobState.COMPLETED, 0, cid)
            assert s.started_at >= s.submitted_at > 0 and s.ended_at >= s.started_at
            files = {f.name: f for f in await centre.results("c-ok.1")}
            assert {"stdout", "out.txt"} <= set(files)
            body = await centre.read("c-ok.1", "out.txt")
            assert hashlib.sha256(body).hexdigest() == files["out.txt"].sha256
            assert len(body) == files["out.txt"].size > 0
            assert await centre.read("c-ok.1", "out.txt", offset=1) == body[1:]
        self.run(go())

    def test_submit_is_idempotent_by_key(self, centre: CentreAdapter) -> None:
        async def go() -> None:
            a = await centre.submit(job("c-idem.1"))
            b = await centre.submit(job("c-idem.1"))
            assert a == b
            assert [s.centre_id for s in await centre.jobs() if s.key == "c-idem.1"] == [a]
        self.run(go())

    def test_failing_job_reports_its_exit_code(self, centre: CentreAdapter) -> None:
        async def go() -> None:
            await centre.submit(job("c-fail.1", "echo oops >&2; exit 3", exit_code=3))
            s = await self.wait(centre, "c-fail.1")
            assert (s.state, s.exit_code) == (CentreJobState.FAILED, 3)
        self.run(go())

    def test_cancel_reaches_the_job_and_is_idempotent(self, centre: CentreAdapter) -> None:
        async def go() -> None:
            cid = await centre.submit(job("c-cancel.1", "sleep 60", runtime_s=60))
            await centre.cancel(cid)
            s = await self.wait(centre, "c-cancel.1")
            assert s.state is CentreJobState.CANCELLED and s.exit_code is None
            await centre.cancel(cid)  # already ended: nothing happens
        self.run(go())

    def test_modify_before_start_refused_after_end(self, centre: CentreAdapter) -> None:
        async def go() -> None:
            big = await centre.submit(job("c-hog.1", "sleep 60", runtime_s=60, cpus=64))
            del big
        # a job over the centre's largest node is refused, naming the centre
        with pytest.raises(CentreRefused, match="centre"):
            self.run(go())

        async def go2() -> None:
            cid = await centre.submit(job("c-mod.1"))
            s = await self.wait(centre, "c-mod.1")
            assert s.state is CentreJobState.COMPLETED
            with pytest.raises(CentreRefused):
                await centre.modify(cid, JobChange(walltime_s=300))
        self.run(go2())

    def test_modify_pending_job(self, centre: CentreAdapter) -> None:
        async def go() -> None:
            # fill the centre, then a pending job's walltime changes
            report = await centre.report()
            cores = int(report.resources["cpu"])
            hog = await centre.submit(job("c-fill.1", "sleep 60", runtime_s=60, cpus=cores))
            cid = await centre.submit(job("c-wait.1", "sleep 1", runtime_s=1))
            s = await centre.find("c-wait.1")
            assert s is not None and s.state is CentreJobState.PENDING
            await centre.modify(cid, JobChange(walltime_s=600, priority=900))
            await centre.cancel(cid)
            await centre.cancel(hog)
            await self.wait(centre, "c-fill.1")
        self.run(go())

    def test_stage_verifies_checksum_and_job_reads_input(self, centre: CentreAdapter,
                                                         tmp_path: Path) -> None:
        src = tmp_path / "in.dat"
        src.write_bytes(b"dataset bytes\n" * 100)
        digest = hashlib.sha256(src.read_bytes()).hexdigest()

        async def go() -> None:
            with pytest.raises(CentreRefused, match="checksum mismatch"):
                await stage(centre, src, "bad.dat", "0" * 64)
            assert await centre.staged("bad.dat") is None
            assert await centre.stage_offset("bad.dat", "0" * 64) == 0  # copy dropped
            assert await stage(centre, src, "in.dat", digest) == src.stat().st_size
            assert await centre.staged("in.dat") == digest
            await centre.submit(job("c-in.1", "wc -c < in.dat > out.txt",
                                    inputs=("in.dat",)))
            s = await self.wait(centre, "c-in.1")
            assert s.state is CentreJobState.COMPLETED
            assert await centre.read("c-in.1", "out.txt")
        self.run(go())

    def test_cut_staging_resumes_at_the_centres_offset(self, centre: CentreAdapter,
                                                       tmp_path: Path) -> None:
        data = bytes(range(256)) * 1200  # 300 KiB
        src = tmp_path / "cut.dat"
        src.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        k = 64 * 1024

        async def go() -> None:
            # a copy cut after two chunks: nothing looks staged, the offset is kept
            assert await centre.stage_chunk("cut.dat", digest, 0, data[:k]) == k
            assert await centre.stage_chunk("cut.dat", digest, k, data[k:2 * k]) == 2 * k
            assert await centre.staged("cut.dat") is None
            assert await centre.stage_offset("cut.dat", digest) == 2 * k
            with pytest.raises(CentreRefused, match=f"resume at byte {2 * k}"):
                await centre.stage_chunk("cut.dat", digest, 0, data[:k])
            # another version of the same name does not resume on these bytes
            assert await centre.stage_offset("cut.dat", "1" * 64) == 0
            sent = await stage(centre, src, "cut.dat", digest, chunk=k)
            assert sent == len(data) - 2 * k  # only the rest went
            assert await centre.staged("cut.dat") == digest
            assert await centre.stage_offset("cut.dat", digest) == 0
        self.run(go())

    def test_reading_outside_the_job_is_refused(self, centre: CentreAdapter) -> None:
        async def go() -> None:
            await centre.submit(job("c-path.1"))
            await self.wait(centre, "c-path.1")
            for name in ("../../etc/passwd", "/etc/passwd", "job.sh"):
                with pytest.raises((ValueError, FileNotFoundError)):
                    await centre.read("c-path.1", name)
        self.run(go())

    def test_report_gives_resources_load_energy_price(self, centre: CentreAdapter) -> None:
        r = self.run(centre.report())
        assert r.resources["cpu"] > 0  # type: ignore[attr-defined]
        assert 0.0 <= r.load <= 1.0  # type: ignore[attr-defined]
        assert r.energy_w > 0 and r.energy_source in ("meter", "model")  # type: ignore[attr-defined]
        assert r.price_per_hour > 0  # type: ignore[attr-defined]

    def test_unreachable_centre_is_unavailable(self, dead_centre: CentreAdapter) -> None:
        for call in (dead_centre.jobs(), dead_centre.submit(job("c-dead.1"))):
            with pytest.raises(CentreUnavailable, match=dead_centre.site):
                self.run(call)
