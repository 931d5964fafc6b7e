"""A centre's file area: job directories and staged data (GBA-6.3 data, GBA-6.6 results).

Rules:
- ``root/jobs/<key>/`` is a job's directory: ``job.sh`` (the script the workload
  manager runs), ``job.json`` (what was asked, for ``results``), ``stdout``, ``stderr``
  and the job's outputs. ``root/data/<name>`` holds staged datasets; a job's inputs are
  linked into its directory before the command runs.
- Names are checked here, at the boundary: a key or file name with ``/..`` or a
  leading ``/`` is refused, so no request reads outside the area.
- Staging arrives in chunks appended to ``data/.<name>.<sha256[:16]>.part`` (a chunk
  must start where the copy ends — a cut transfer resumes there, also after a
  restart); the commit verifies the SHA-256, then renames: a cut copy or a mismatch
  never leaves a file that looks staged, and a mismatch drops the copy.
- At a real centre the area is the shared filesystem the cluster mounts (as at most
  HPC sites); the controller reaches it at ``root``. When the centre runs jobs as
  another account (``owner``), each job directory is given to it so the job can write
  its outputs there.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from pathlib import Path

from scheduler.centres.base import CentreJob, ResultFile

_SAFE = re.compile(r"^[A-Za-z0-9_.\-][A-Za-z0-9_.\-/]{0,254}$")
STREAMS = ("stdout", "stderr")


def safe_name(name: str) -> str:
    if not _SAFE.match(name) or ".." in name.split("/") or name.startswith("/"):
        raise ValueError(f"file name {name!r} is not a plain relative path "
                         "(letters, digits, '_', '.', '-', '/'; no '..')")
    return name


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class CentreFiles:
    """Job directories and the data area under ``root``."""

    def __init__(self, root: Path, owner: str | None = None) -> None:
        self.root = root
        self.owner: tuple[int, int] | None = None
        if owner:
            import pwd

            try:
                pw = pwd.getpwnam(owner)
            except KeyError:
                raise ValueError(f"run_as {owner!r} is not a user on this host; name the "
                                 "account the centre runs jobs as") from None
            self.owner = (pw.pw_uid, pw.pw_gid)
        self.jobs = root / "jobs"
        self.data = root / "data"
        self.jobs.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        self._sums: dict[str, tuple[float, int, str]] = {}

    def job_dir(self, key: str) -> Path:
        return self.jobs / safe_name(key)

    def prepare(self, job: CentreJob) -> Path:
        """Write the job directory; returns the script path."""
        d = self.job_dir(job.key)
        d.mkdir(parents=True, exist_ok=True)
        if self.owner is not None:
            os.chown(d, *self.owner)
        links = "".join(
            f"ln -sf {shlex.quote(str(self.data / safe_name(n)))} "
            f"{shlex.quote(safe_name(n))}\n" for n in job.inputs)
        env = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in job.env)
        script = (f"#!/bin/sh\n# CPN job {job.job_id} ({job.key})\n"
                  f"cd {shlex.quote(str(d))} || exit 97\n"
                  f"export CPN_JOB_ID={shlex.quote(job.job_id)} CPN_JOB_KEY={job.key}\n"
                  f"{env}{links}{job.command}\n")
        path = d / "job.sh"
        path.write_text(script)
        path.chmod(0o755)
        (d / "job.json").write_text(json.dumps({"key": job.key, "job_id": job.job_id,
                                                "outputs": list(job.outputs)}))
        return path

    def outputs(self, key: str) -> list[str]:
        meta = self.job_dir(key) / "job.json"
        if not meta.exists():
            return []
        return [str(x) for x in json.loads(meta.read_text()).get("outputs", [])]

    def results(self, key: str) -> list[ResultFile]:
        d = self.job_dir(key)
        out = []
        for name in (*STREAMS, *self.outputs(key)):
            p = d / safe_name(name)
            if p.is_file():
                out.append(ResultFile(name, p.stat().st_size, sha256_file(p)))
        return out

    def read(self, key: str, name: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        if name not in STREAMS and name not in self.outputs(key):
            raise FileNotFoundError(f"{name!r} is not stdout, stderr or a declared output "
                                    f"of {key}")
        p = self.job_dir(key) / safe_name(name)
        if not p.is_file():
            raise FileNotFoundError(f"{name!r} of {key} does not exist (yet)")
        with p.open("rb") as fh:
            fh.seek(max(0, offset))
            return fh.read(max(0, limit))

    def _part(self, name: str, sha256: str) -> Path:
        """Where an unfinished copy of this version of ``name`` grows (the checksum is in
        the name: a different version never resumes on these bytes)."""
        dst = self.data / safe_name(name)
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise ValueError(f"sha256 {sha256!r} is not 64 hex digits")
        return dst.with_name(f".{dst.name}.{sha256[:16]}.part")

    def stage_offset(self, name: str, sha256: str) -> int:
        p = self._part(name, sha256)
        return p.stat().st_size if p.exists() else 0

    def stage_chunk(self, name: str, sha256: str, offset: int, data: bytes) -> int:
        """Append ``data`` at ``offset``, which must be the bytes held so far."""
        p = self._part(name, sha256)
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("ab") as fh:
            have = fh.tell()
            if offset != have:
                raise ValueError(f"copy of {name} holds {have} bytes; resume at byte {have} "
                                 f"(this chunk starts at {offset})")
            fh.write(data)
            return have + len(data)

    def stage_commit(self, name: str, sha256: str) -> None:
        """Verify the whole copy and put it in place; a mismatch drops it."""
        p = self._part(name, sha256)
        if not p.exists():
            raise ValueError(f"no copy of {name} to verify; send it from byte 0")
        got = sha256_file(p)
        if got != sha256:
            p.unlink(missing_ok=True)
            raise ValueError(f"checksum mismatch staging {name}: sha256 {got}, "
                             f"expected {sha256}")
        p.replace(self.data / safe_name(name))

    def staged(self, name: str) -> str | None:
        p = self.data / safe_name(name)
        try:
            st = p.stat()
        except FileNotFoundError:
            return None
        cached = self._sums.get(name)
        if cached is not None and cached[:2] == (st.st_mtime, st.st_size):
            return cached[2]
        s = sha256_file(p)
        self._sums[name] = (st.st_mtime, st.st_size, s)
        return s
