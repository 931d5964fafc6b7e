"""Datasets: resumable chunked checksummed upload, ranged download, bandwidth cap,
staging to the chosen centre, data-aware placement by real location (GBA-6.3,
GBA-6.4.3g, GBA-6.5f-7, GBA-6.6). Centres simulated; the lab uses Slurm."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

from fastapi.testclient import TestClient

from controller.api.app import create_app
from controller.auth import digest
from controller.models import Dataset, DatasetState, Job, JobState
from controller.runtime import Runtime
from scheduler.centres.transfer import stage
from tests.scheduler.centres.test_dispatch import job, rt, sim, start, state, until

__all__ = ["rt"]
OP = {"Authorization": "Bearer op-token-0123456789"}


def client(rt: Runtime) -> TestClient:
    rt.store.add_token(digest("op-token-0123456789"), "ops", "operator", None)
    return TestClient(create_app(rt))


def upload(c: TestClient, name: str, data: bytes, start: int = 0, stop: int | None = None,
           chunk: int = 16384) -> None:
    stop = len(data) if stop is None else stop
    off = start
    while off < stop:
        part = data[off:min(off + chunk, stop)]
        r = c.put(f"/api/v1/datasets/{name}/data", content=part, headers={
            **OP, "Content-Range": f"bytes {off}-{off + len(part) - 1}/{len(data)}"})
        assert r.status_code == 200, r.text
        off += len(part)


def test_upload_resumes_where_it_stopped_and_verifies(rt: Runtime) -> None:
    c = client(rt)
    data = os.urandom(100_000)
    sha = hashlib.sha256(data).hexdigest()
    r = c.post("/api/v1/datasets", json={"name": "d1", "size": len(data), "sha256": sha},
               headers=OP)
    assert r.status_code == 201 and r.json()["state"] == "uploading"
    upload(c, "d1", data, stop=40_000)  # the first session stops here
    got = c.get("/api/v1/datasets/d1", headers=OP).json()
    assert (got["state"], got["received"]) == ("uploading", 40_000)
    # a chunk at the wrong offset is refused, naming where to resume
    bad = c.put("/api/v1/datasets/d1/data", content=b"x" * 10, headers={
        **OP, "Content-Range": f"bytes 0-9/{len(data)}"})
    assert bad.status_code == 409 and "resume at byte 40000" in bad.json()["error"]["message"]
    assert c.put("/api/v1/datasets/d1/data", content=b"x", headers=OP).status_code == 422
    upload(c, "d1", data, start=got["received"])
    done = c.get("/api/v1/datasets/d1", headers=OP).json()
    assert done["state"] == "ready" and done["received"] == len(data)
    whole = c.get("/api/v1/datasets/d1/data", headers=OP)
    assert whole.status_code == 200 and whole.content == data
    part = c.get("/api/v1/datasets/d1/data", headers={**OP, "Range": "bytes=99000-"})
    assert part.status_code == 206 and part.content == data[99000:]
    assert part.headers["content-range"] == f"bytes 99000-{len(data) - 1}/{len(data)}"
    assert c.get("/api/v1/datasets/d1/data",
                 headers={**OP, "Range": "bytes=200000-"}).status_code == 416


def test_checksum_mismatch_fails_the_dataset_and_keeps_nothing(rt: Runtime) -> None:
    c = client(rt)
    data = b"a" * 5000
    c.post("/api/v1/datasets", json={"name": "d2", "size": len(data), "sha256": "0" * 64},
           headers=OP)
    upload(c, "d2", data)
    ds = rt.store.get(Dataset, "d2")
    assert ds is not None and ds.state is DatasetState.FAILED
    assert "checksum mismatch" in ds.reason and hashlib.sha256(data).hexdigest() in ds.reason
    assert c.get("/api/v1/datasets/d2", headers=OP).json()["received"] == 0
    more = c.put("/api/v1/datasets/d2/data", content=b"a", headers={
        **OP, "Content-Range": "bytes 0-0/5000"})
    assert more.status_code == 409 and "register it again" in more.json()["error"]["message"]
    # a job naming it, or an unknown dataset, is refused at submission
    for name, text in (("d2", "failed"), ("nope", "unknown dataset")):
        r = c.post("/api/v1/jobs", headers=OP, json={"spec": {
            "name": "j", "command": "true", "datasets": [name]}})
        assert r.status_code == 422 and text in r.text and "spec.datasets[0]" in r.text


def test_bandwidth_cap_paces_transfers(tmp_path: Path) -> None:
    from scheduler.centres.data import Throttle

    async def go() -> float:
        t = Throttle(8.0)  # 1 MB/s
        t0 = time.monotonic()
        for _ in range(8):
            await t.take(64 * 1024)
        return time.monotonic() - t0
    took = asyncio.run(go())
    assert took >= 0.9 * (7 * 64 * 1024) / 1e6  # the first 64 KiB burst is free


def test_staging_honours_the_cap_and_a_cut_copy_resumes(tmp_path: Path) -> None:
    """Staging goes through the chunked transfer under the controller's cap: 1.5 MB at
    8 Mbit/s takes ≈ 1.5 s; cut half-way, the next copy sends only the rest."""
    from scheduler.centres.data import Throttle
    from scheduler.centres.sim import SimCentre

    data = os.urandom(1_500_000)
    src = tmp_path / "d.bin"
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    centre = SimCentre("DC-X", tmp_path / "centre")

    async def go() -> tuple[float, int, int]:
        t0 = time.monotonic()
        await stage(centre, src, "full.bin", sha, pace=Throttle(8.0), chunk=128 * 1024)
        took = time.monotonic() - t0
        held: list[int] = []
        task = asyncio.create_task(stage(centre, src, "cut.bin", sha, pace=Throttle(8.0),
                                         chunk=128 * 1024, progress=held.append))
        while not held or held[-1] < 600_000:
            await asyncio.sleep(0.02)
        task.cancel()  # the transfer is cut mid-way
        await asyncio.gather(task, return_exceptions=True)
        cut = await centre.stage_offset("cut.bin", sha)
        sent = await stage(centre, src, "cut.bin", sha, chunk=128 * 1024)
        return took, cut, sent

    took, cut, sent = asyncio.run(go())
    ideal = (len(data) - 64 * 1024) / 1e6  # 8 Mbit/s = 1 MB/s; the 64 KiB burst is free
    assert 0.9 * ideal <= took < 3 * ideal, took
    assert 600_000 <= cut < len(data) and sent == len(data) - cut
    assert asyncio.run(centre.staged("cut.bin")) == sha
    assert asyncio.run(centre.staged("full.bin")) == sha


def test_job_data_is_staged_to_its_centre_and_pulls_placement(rt: Runtime) -> None:
    c = client(rt)
    data = os.urandom(20_000)
    sha = hashlib.sha256(data).hexdigest()
    c.post("/api/v1/datasets", json={"name": "in.bin", "size": len(data), "sha256": sha},
           headers=OP)
    upload(c, "in.bin", data, stop=10_000)

    async def main() -> None:
        await start(rt)
        try:
            rt.writer.put(job("uses", datasets=["in.bin"]), "test", "submit")
            await until(rt, lambda: "waiting for dataset in.bin" in
                        (rt.store.get(Job, "uses") or job("x")).reason, "held for data")
            assert state(rt, "uses") is JobState.DISPATCHED
            upload(c, "in.bin", data, start=10_000)
            await until(rt, lambda: state(rt, "uses") is JobState.FINISHED, "finished")
            j = rt.store.get(Job, "uses")
            assert j is not None and j.site is not None
            a = sim(rt, j.site)
            assert await a.staged("in.bin") == sha
            ds = rt.store.get(Dataset, "in.bin")
            assert ds is not None and ds.locations == [j.site]
        finally:
            await rt.stop()
    asyncio.run(main())


def test_dispatcher_stages_under_the_cap_while_the_job_waits(rt: Runtime) -> None:
    """The job's dataset goes to its centre through the capped transfer: the job waits
    with the copy's progress as its reason, starts once the copy is verified there, and
    the copy took ≈ size / cap."""
    from scheduler.centres.data import Throttle, area

    c = client(rt)
    data = os.urandom(400_000)
    sha = hashlib.sha256(data).hexdigest()
    c.post("/api/v1/datasets", json={"name": "capped.bin", "size": len(data),
                                     "sha256": sha}, headers=OP)
    upload(c, "capped.bin", data, chunk=65536)
    a = area(rt)
    a.throttle = Throttle(2.0)  # 250 kB/s: 400 kB in ≈ 1.6 s

    async def main() -> float:
        await start(rt)
        try:
            t0 = time.monotonic()
            rt.writer.put(job("capped", datasets=["capped.bin"]), "test", "submit")
            await until(rt, lambda: "staging dataset capped.bin" in
                        (rt.store.get(Job, "capped") or job("x")).reason, "staging")
            assert state(rt, "capped") is JobState.DISPATCHED
            view = c.get("/api/v1/datasets/capped.bin", headers=OP).json()
            assert len(view["staging"]) == 1  # the copy in progress: centre → bytes there
            await until(rt, lambda: state(rt, "capped") is JobState.FINISHED, "finished")
            return time.monotonic() - t0
        finally:
            await rt.stop()
    took = asyncio.run(main())
    assert took >= 0.9 * (len(data) - 64 * 1024) / 250_000
    assert a.moved == len(data)
    j = rt.store.get(Job, "capped")
    assert j is not None and j.site is not None
    assert asyncio.run(sim(rt, j.site).staged("capped.bin")) == sha


def test_big_data_already_at_a_centre_pulls_the_job_there(rt: Runtime) -> None:
    c = client(rt)
    big = rt.settings.state / "big.bin"
    big.parent.mkdir(parents=True, exist_ok=True)
    big.write_bytes(b"z" * 1000)
    sha = hashlib.sha256(big.read_bytes()).hexdigest()
    # at DC-B (the dearer centre) already; declared as 2 TiB of input
    asyncio.run(stage(sim(rt, "DC-B"), big, "big.bin", sha))
    bad = c.post("/api/v1/datasets", headers=OP, json={
        "name": "big.bin", "size": 1000, "sha256": sha, "site": "DC-A"})
    assert bad.status_code == 422 and "has no big.bin" in bad.text
    r = c.post("/api/v1/datasets", headers=OP, json={
        "name": "big.bin", "size": 1000, "sha256": sha, "site": "DC-B"})
    assert r.status_code == 201 and r.json()["state"] == "ready"

    async def main() -> None:
        await start(rt)
        try:
            rt.writer.put(job("near", datasets=["big.bin"], data_gib=2000), "test", "submit")
            await until(rt, lambda: state(rt, "near") is JobState.FINISHED, "finished")
            near = rt.store.get(Job, "near")
            assert near is not None and near.site == "DC-B"
        finally:
            await rt.stop()
    asyncio.run(main())
