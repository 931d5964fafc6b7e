"""Slurm backend of ``CentreAdapter``: the centre's own ``sbatch``/``squeue``/``scancel``/
``scontrol``/``sinfo`` with ``SLURM_CONF`` pointing at the centre's cluster (GBA-6.3).

Rules:
- A CPN job is a Slurm batch job named ``cpn.<key>`` with comment ``cpn:<key>``; the
  script and its stdout/stderr live in the job's directory under ``workdir`` (the
  cluster's shared filesystem, ``scheduler.centres.files``).
- Idempotent submit: before the first submission the adapter lists the cluster's CPN
  jobs (``squeue --json -t all``, which includes ended jobs until ``MinJobAge``, then
  the ``jobcomp/filetxt`` file when given); a key it knows is never submitted again.
  After that, the index is kept by this process's own submissions and each listing.
- Time limits go as ``minutes:seconds``; CPN priority 0–1000 maps to ``nice`` 1000−p
  (higher priority starts first); GPUs go as ``--gres=gpu:N``.
- Exit codes: squeue reports the wait status; the exit code is ``status >> 8``, or
  128 + signal when killed. Job states map to ``CentreJobState`` in ``STATES``.
- Errors: no answer from ``slurmctld`` (connect failure, timeout, a client that
  cannot run) is ``CentreUnavailable``; any other refusal is ``CentreRefused`` with
  Slurm's own message.
- Energy: a node's ``energy.current_watts`` when the cluster meters it, else a model
  (``idle_w`` + load × (``max_w`` − ``idle_w``)), labelled ``model``.
- With ``rest`` (a slurmrestd address, ``scheduler.centres.slurmrest``) submit, list
  and cancel go over its keep-alive connections instead of one ``sbatch``/``squeue``/
  ``scancel`` process each (the same job name, comment and limits; time limits in
  whole minutes); jobs then run as slurmrestd's user (``run_as``), who is given each
  job directory, with ``PATH`` and ``LANG`` from the controller. A submit whose
  connection broke before an answer is looked up by its key before it is sent again.
  Modify, report and the controller-down checks stay on the CLI clients.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from scheduler.centres.base import (
    ENDED,
    CentreJob,
    CentreJobState,
    CentreJobStatus,
    CentreRefused,
    CentreReport,
    CentreUnavailable,
    JobChange,
    ResultFile,
)
from scheduler.centres.files import CentreFiles
from scheduler.centres.slurmrest import API, DOWN, SlurmRest, Stale

S = CentreJobState
T = TypeVar("T")
STATES: dict[str, CentreJobState] = {
    "PENDING": S.PENDING, "REQUEUED": S.PENDING, "REQUEUE_HOLD": S.PENDING,
    "REQUEUE_FED": S.PENDING, "RESV_DEL_HOLD": S.PENDING,
    "CONFIGURING": S.RUNNING, "RUNNING": S.RUNNING, "COMPLETING": S.RUNNING,
    "SUSPENDED": S.RUNNING, "STAGE_OUT": S.RUNNING, "SIGNALING": S.RUNNING,
    "RESIZING": S.RUNNING,
    "COMPLETED": S.COMPLETED, "FAILED": S.FAILED, "OUT_OF_MEMORY": S.FAILED,
    "CANCELLED": S.CANCELLED, "TIMEOUT": S.TIMEOUT, "DEADLINE": S.TIMEOUT,
    "NODE_FAIL": S.LOST, "BOOT_FAIL": S.LOST, "PREEMPTED": S.LOST,
    "SPECIAL_EXIT": S.FAILED, "REVOKED": S.LOST,
}
_DOWN = DOWN
PREFIX = "cpn:"


def exit_code(status: int) -> int:
    """Wait status → exit code (128 + signal when the job was killed)."""
    if status & 0x7F:
        return 128 + (status & 0x7F)
    return (status >> 8) & 0xFF


class SlurmCentre:
    """One Slurm cluster: ``site``, ``conf`` (slurm.conf path), ``workdir``,
    ``partition``, ``price_per_hour``, ``idle_w``/``max_w`` (energy model, W),
    ``jobcomp`` (the jobcomp/filetxt file, optional), ``timeout_s`` per command,
    ``rest`` (slurmrestd address, optional) and ``run_as`` (its user)."""

    backend = "slurm"

    def __init__(self, site: str, conf: Path, workdir: Path, *, partition: str = "",
                 price_per_hour: float = 1.0, idle_w: float = 100.0, max_w: float = 400.0,
                 jobcomp: Path | None = None, timeout_s: float = 15.0,
                 bin_dir: Path | None = None, rest: str | None = None,
                 run_as: str | None = None, rest_connections: int = 8) -> None:
        self.site = site
        self.conf = conf
        self.files = CentreFiles(workdir, owner=run_as)
        self.rest = SlurmRest(site, rest, timeout_s=timeout_s, size=rest_connections) \
            if rest else None
        self.partition = partition
        self.price_per_hour = price_per_hour
        self.idle_w, self.max_w = idle_w, max_w
        self.jobcomp = jobcomp
        self.timeout_s = timeout_s
        self.bin_dir = bin_dir
        self._env = {**os.environ, "SLURM_CONF": str(conf)}
        self._index: dict[str, str] = {}  # key → Slurm job id
        self._listed = False
        self._largest_node: dict[str, float] = {}
        self._largest_at = 0.0
        self._lock = asyncio.Lock()
        self._jobcomp: tuple[tuple[float, int], dict[str, str]] = ((0.0, -1), {})

    # ------------------------------------------------------------ plumbing
    async def _run(self, *args: str) -> str:
        cmd = str(self.bin_dir / args[0]) if self.bin_dir else args[0]
        try:
            proc = await asyncio.create_subprocess_exec(
                cmd, *args[1:], env=self._env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise CentreUnavailable(self.site, f"cannot run {args[0]}: {exc}") from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise CentreUnavailable(self.site, f"{args[0]} gave no answer in "
                                    f"{self.timeout_s:g} s") from None
        if proc.returncode != 0:
            msg = (err or out).decode(errors="replace").strip() or f"exit {proc.returncode}"
            if any(s in msg.lower() for s in _DOWN):
                raise CentreUnavailable(self.site, f"{args[0]}: {msg}")
            raise CentreRefused(self.site, f"{args[0]}: {msg}")
        return out.decode(errors="replace")

    async def _json(self, *args: str) -> dict[str, Any]:
        """Run a ``--json`` client; its exit code is 0 even when slurmctld did not
        answer, so the document's ``errors`` are checked too."""
        out = await self._run(*args)
        try:
            doc = json.loads(out)
        except json.JSONDecodeError as exc:
            raise CentreUnavailable(self.site, f"{args[0]} --json gave bad JSON: {exc}") \
                from exc
        errors = doc.get("errors") or []
        if errors:
            text = "; ".join(f"{e.get('source', '')}: {e.get('description', '')}"
                             for e in errors if isinstance(e, dict))
            raise CentreUnavailable(self.site, f"{args[0]}: {text or errors}")
        return dict(doc)

    def _status(self, j: dict[str, Any]) -> CentreJobStatus | None:
        comment = str(j.get("comment") or "")
        if not comment.startswith(PREFIX):
            return None
        raw = str(j.get("job_state") or "")
        state = STATES.get(raw, S.PENDING)
        code = j.get("exit_code")
        ended = state in ENDED and state is not S.CANCELLED
        return CentreJobStatus(
            key=comment[len(PREFIX):], centre_id=str(j.get("job_id")), state=state,
            raw_state=raw, exit_code=exit_code(int(code)) if ended and code is not None
            else None, reason=str(j.get("state_reason") or "").replace("None", ""),
            submitted_at=float(j.get("submit_time") or 0),
            started_at=float(j.get("start_time") or 0) if state is not S.PENDING else 0.0,
            ended_at=float(j.get("end_time") or 0) if state in ENDED else 0.0,
            node=str(j.get("nodes") or ""))

    # ------------------------------------------------------------ jobs
    async def jobs(self) -> list[CentreJobStatus]:
        if self.rest is not None:
            doc = await self.rest.call("GET", f"{API}/jobs", retry=True)
        else:
            doc = await self._json("squeue", "--json", "-t", "all")
        found = [s for j in doc.get("jobs", []) if (s := self._status(j)) is not None]
        for s in found:
            self._index[s.key] = s.centre_id
        self._listed = True
        return found

    async def find(self, key: str) -> CentreJobStatus | None:
        found = next((s for s in await self.jobs() if s.key == key), None)
        return found or self._from_jobcomp(key)

    def _from_jobcomp(self, key: str) -> CentreJobStatus | None:
        """An ended job squeue has forgotten, from the jobcomp/filetxt file."""
        if self.jobcomp is None:
            return None
        try:
            st = self.jobcomp.stat()
        except OSError:
            return None
        if self._jobcomp[0] != (st.st_mtime, st.st_size):  # parsed once per change
            lines: dict[str, str] = {}
            for line in self.jobcomp.read_text(errors="replace").splitlines():
                m = re.search(r" Name=cpn\.(\S+) ", line)
                if m:
                    lines[m.group(1)] = line  # the last line of a key wins
            self._jobcomp = ((st.st_mtime, st.st_size), lines)
        hit = self._jobcomp[1].get(key)
        if hit is None:
            return None
        f: dict[str, str] = {m.group(1): m.group(2) for m in re.finditer(r"(\w+)=(\S*)", hit)}
        state = STATES.get(f.get("JobState", ""), S.FAILED)
        code, _, sig = f.get("ExitCode", "0:0").partition(":")
        ec = 128 + int(sig) if sig not in ("", "0") else int(code or 0)
        return CentreJobStatus(key=key, centre_id=f.get("JobId", ""), state=state,
                               raw_state=f.get("JobState", ""),
                               exit_code=None if state is S.CANCELLED else ec,
                               node=f.get("NodeList", ""))

    async def submit(self, job: CentreJob) -> str:
        async with self._lock:  # the first listing happens once, not per caller
            if not self._listed:
                await self.jobs()
        known = self._index.get(job.key)
        if known is not None:
            return known
        old = self._from_jobcomp(job.key)
        if old is not None:
            return old.centre_id
        largest = await self._largest()
        for what, want in (("CPUs", job.cpus), ("MiB memory", job.memory_mib),
                           ("GPUs", job.gpus)):
            have = largest.get(what, 0)
            if want > have:
                # sbatch would queue it for ever (Reason=Resources); say no now
                raise CentreRefused(self.site, f"job asks {want} {what}; the largest node "
                                    f"has {have:g}")
        script = self.files.prepare(job)
        if self.rest is not None:
            return await self._submit_rest(job, script)
        d = script.parent
        secs = max(60, math.ceil(job.walltime_s))
        args = ["sbatch", "--parsable", f"--job-name=cpn.{job.key}",
                f"--comment={PREFIX}{job.key}", f"--chdir={d}", f"--output={d}/stdout",
                f"--error={d}/stderr", f"--time={secs // 60}:{secs % 60:02d}",
                f"--cpus-per-task={max(1, job.cpus)}",
                f"--nice={max(0, 1000 - job.priority)}", "--export=ALL"]
        if job.memory_mib > 0:
            args.append(f"--mem={job.memory_mib}")
        if job.gpus > 0:
            args.append(f"--gres=gpu:{job.gpus}")
        if self.partition:
            args.append(f"--partition={self.partition}")
        out = await self._run(*args, str(script))
        cid = out.strip().split(";")[0]
        if not cid.isdigit():
            raise CentreRefused(self.site, f"sbatch answered {out.strip()!r}, not a job id")
        self._index[job.key] = cid
        return cid

    async def _submit_rest(self, job: CentreJob, script: Path) -> str:
        assert self.rest is not None
        d = script.parent
        desc: dict[str, Any] = {
            "name": f"cpn.{job.key}", "comment": f"{PREFIX}{job.key}",
            "current_working_directory": str(d), "standard_output": f"{d}/stdout",
            "standard_error": f"{d}/stderr",
            "time_limit": max(1, math.ceil(job.walltime_s / 60)),
            "cpus_per_task": max(1, job.cpus), "nice": max(0, 1000 - job.priority),
            "environment": {k: os.environ[k] for k in ("PATH", "LANG") if k in os.environ}
            or {"PATH": "/usr/bin:/bin"}}
        if job.memory_mib > 0:
            desc["memory_per_node"] = job.memory_mib
        if job.gpus > 0:
            desc["gres"] = f"gpu:{job.gpus}"
        if self.partition:
            desc["partition"] = self.partition
        body = {"script": script.read_text(), "job": desc}
        try:
            doc = await self.rest.call("POST", f"{API}/job/submit", body)
        except Stale:
            # the connection closed under the request: submitted or not? ask first
            await self.jobs()
            known = self._index.get(job.key)
            if known is not None:
                return known
            doc = await self.rest.call("POST", f"{API}/job/submit", body)
        cid = str(doc.get("job_id", ""))
        if not cid.isdigit():
            raise CentreRefused(self.site, f"slurmrestd answered {doc!r:.200}, not a job id")
        self._index[job.key] = cid
        return cid

    async def _largest(self) -> dict[str, float]:
        """The biggest node's CPUs, memory and GPUs (cached 30 s)."""
        loop = asyncio.get_running_loop()
        if self._largest_at and loop.time() - self._largest_at < 30.0:
            return self._largest_node
        doc = await self._json("sinfo", "--json")
        out: dict[str, float] = {}
        for n in doc.get("nodes", []):
            for what, v in (("CPUs", float(n.get("cpus") or 0)),
                            ("MiB memory", float(n.get("real_memory") or 0)),
                            ("GPUs", _gpus(str(n.get("gres") or "")))):
                out[what] = max(out.get(what, 0.0), v)
        self._largest_node, self._largest_at = out, loop.time()
        return out

    async def cancel(self, centre_id: str) -> None:
        try:
            if self.rest is not None:
                await self.rest.call("DELETE", f"{API}/job/{centre_id}", retry=True)
                return
            await self._run("scancel", centre_id)
        except CentreRefused as exc:
            if "already completing or completed" not in str(exc).lower():
                raise

    async def modify(self, centre_id: str, change: JobChange) -> None:
        cur = next((s for s in await self.jobs() if s.centre_id == centre_id), None)
        if cur is None:
            raise CentreRefused(self.site, f"no CPN job {centre_id} at this cluster")
        if cur.state is not S.PENDING:
            raise CentreRefused(self.site, f"job {centre_id} is {cur.raw_state}; only a "
                                "pending job can be modified")
        args = ["scontrol", "update", f"JobId={centre_id}"]
        if change.walltime_s is not None:
            secs = max(60, math.ceil(change.walltime_s))
            args.append(f"TimeLimit={secs // 60}:{secs % 60:02d}")
        if change.cpus is not None:
            args.append(f"NumCPUs={change.cpus}")
        if change.priority is not None:
            args.append(f"Nice={max(0, 1000 - change.priority)}")
        if len(args) > 3:
            await self._run(*args)

    # ------------------------------------------------------------ files
    async def results(self, key: str) -> list[ResultFile]:
        return await asyncio.to_thread(self.files.results, key)

    async def read(self, key: str, name: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        return await asyncio.to_thread(self.files.read, key, name, offset, limit)

    async def stage_offset(self, name: str, sha256: str) -> int:
        return await self._files(self.files.stage_offset, name, sha256)

    async def stage_chunk(self, name: str, sha256: str, offset: int, data: bytes) -> int:
        return await self._files(self.files.stage_chunk, name, sha256, offset, data)

    async def stage_commit(self, name: str, sha256: str) -> None:
        await self._files(self.files.stage_commit, name, sha256)

    async def _files(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args)
        except ValueError as exc:
            raise CentreRefused(self.site, str(exc)) from exc

    async def staged(self, name: str) -> str | None:
        return await asyncio.to_thread(self.files.staged, name)

    # ------------------------------------------------------------ report
    async def report(self) -> CentreReport:
        doc = await self._json("sinfo", "--json")
        total: dict[str, float] = {"cpu": 0.0, "memory": 0.0, "gpu": 0.0}
        alloc: dict[str, float] = {"cpu": 0.0, "memory": 0.0, "gpu": 0.0}
        nodes: dict[str, str] = {}
        metered = 0.0
        for n in doc.get("nodes", []):
            state = str(n.get("state", "")).lower()
            nodes[str(n.get("name"))] = state
            if any(s in state for s in ("down", "drain", "fail")):
                continue
            total["cpu"] += float(n.get("cpus") or 0)
            alloc["cpu"] += float(n.get("alloc_cpus") or 0)
            total["memory"] += float(n.get("real_memory") or 0) / 1024.0
            alloc["memory"] += float(n.get("alloc_memory") or 0) / 1024.0
            total["gpu"] += _gpus(str(n.get("gres") or ""))
            alloc["gpu"] += _gpus(str(n.get("gres_used") or ""))
            energy = n.get("energy")
            if isinstance(energy, dict):
                metered += float(energy.get("current_watts") or 0)
        load = alloc["cpu"] / total["cpu"] if total["cpu"] else 0.0
        states = [s.state for s in await self.jobs()]
        model = len(nodes) * self.idle_w + load * len(nodes) * (self.max_w - self.idle_w)
        return CentreReport(
            resources=total, allocated=alloc, load=load,
            energy_w=metered if metered > 0 else model,
            energy_source="meter" if metered > 0 else "model",
            price_per_hour=self.price_per_hour, nodes=nodes,
            pending=states.count(S.PENDING), running=states.count(S.RUNNING))

    async def close(self) -> None:
        if self.rest is not None:
            await self.rest.close()


def _gpus(gres: str) -> float:
    """``gpu:2``, ``gpu:a100:2(S:0-1)``, ``gpu:(null):0(IDX:N/A)`` → number of GPUs."""
    total = 0.0
    for part in gres.split(","):
        if not part.startswith("gpu"):
            continue
        m = re.match(r"gpu(?::[^:(]+)?:(\d+)", part)
        if m:
            total += float(m.group(1))
    return total
