"""A real Slurm cluster for labs, tests and benches: its own munged, slurmctld and slurmd.

Rules (LAB-NOTES "Slurm"):
- Everything lives under ``root``: munge key and socket, slurm.conf (+ gres.conf),
  state, spool, logs, pid files, the jobcomp/filetxt file and the shared work area
  the adapter uses. Several clusters share one host by ports: each takes two free
  ports (slurmctld, slurmd) and unique cluster/node names, so parallel runs never
  collide.
- ``SlurmctldHost`` must be this host's short name (slurmctld refuses to start as a
  controller otherwise); ``SlurmdParameters=config_overrides`` lets the node
  advertise ``cpus`` whatever the box has. GPUs are fake char devices (GRES needs
  files; ``mknod c 1 3``).
- Daemons are stopped by the pids they wrote, never by name. ``stop_controller`` kills
  only slurmctld (the centre's scheduler is down; slurmd and running jobs go on);
  ``start_controller`` brings it back from its saved state.
- ``available()`` says why Slurm cannot run here (not root, binaries missing).
- ``rest=True`` also starts ``slurmrestd`` (it refuses root: ``-u slurm``, local auth)
  on a unix socket (``rest`` is its address); jobs submitted through it run as user
  slurm, so the shared work area then lives in its own world-traversable /tmp
  directory (a private temp tree above it would stop the job at ``chdir``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from labs.netns import LabError, free_port

DAEMONS = ("munged", "slurmctld", "slurmd", "slurmrestd", "sbatch", "squeue", "scancel", "scontrol",
           "sinfo", "runuser", "mknod")


def available() -> str | None:
    """None when a cluster can be started here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "Slurm clusters need root (munged runs as user munge, slurmd as root)"
    missing = [d for d in DAEMONS if shutil.which(d) is None
               and not Path("/usr/sbin", d).exists()]
    if missing:
        return (f"missing {', '.join(missing)}: apt-get install slurm-wlm munge "
                "(scripts/bootstrap.sh installs them)")
    try:
        import pwd

        pwd.getpwnam("munge")
    except KeyError:
        return "no user munge: apt-get install munge"
    return None


def _bin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _kill(pid_file: Path, sig: int = signal.SIGTERM, wait_s: float = 10.0) -> None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    end = time.monotonic() + wait_s
    while _alive(pid) and time.monotonic() < end:
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


class SlurmCluster:
    """One cluster named ``name`` under ``root`` with one node of ``cpus`` cores,
    ``memory_mib`` and ``gpus`` fake GPUs."""

    def __init__(self, name: str, root: Path, *, cpus: int = 4, memory_mib: int = 4096,
                 gpus: int = 0, rest: bool = False) -> None:
        self.name = (name.lower().replace("-", "")[:10] or "c") + secrets.token_hex(2)
        self.node = f"{self.name}n1"
        self.root = root
        self.cpus, self.memory_mib, self.gpus = cpus, memory_mib, gpus
        self.conf = root / "etc" / "slurm.conf"
        self.workdir = root / "work"
        self.jobcomp = root / "jobcomp.txt"
        self.ctld_port = self.slurmd_port = 0
        self.started = False
        self.munge = root / "munge"
        self.spool = root / "spool"
        self.with_rest = rest
        self.rest = ""  # slurmrestd address once started
        self.run_as = "slurm" if rest else ""
        self._restd: subprocess.Popen[bytes] | None = None
        self._rest_dir: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def _write(self) -> None:
        r = self.root
        r.mkdir(parents=True, exist_ok=True)
        for d in ("etc", "state", "spool", "log", "work", "dev"):
            (r / d).mkdir(parents=True, exist_ok=True)
        # munged (user munge) must traverse every directory above its socket and log, so
        # they live in their own /tmp directory, not under a private temp tree
        munge = self.munge = Path(tempfile.mkdtemp(prefix="cpn-munge-", dir="/tmp"))
        # slurmd's spool holds the job steps' unix sockets: a short path, or a deep
        # root (> ~80 characters) makes them overflow sun_path and jobs never start
        self.spool = Path(tempfile.mkdtemp(prefix="cpn-sd-", dir="/tmp"))
        if self.with_rest:  # jobs run as user slurm: every directory above must be open
            self.spool.chmod(0o755)  # (slurmstepd execs the script from the spool)
            self.workdir = Path(tempfile.mkdtemp(prefix="cpn-work-", dir="/tmp"))
            self.workdir.chmod(0o755)
        shutil.chown(munge, "munge", "munge")
        munge.chmod(0o711)  # munged: the socket's directory must be searchable by all
        key = munge / "key"
        key.write_bytes(secrets.token_bytes(1024))
        shutil.chown(key, "munge", "munge")
        key.chmod(0o400)
        self.ctld_port, self.slurmd_port = free_port(), free_port()
        host = socket.gethostname().split(".")[0]
        gres = ""
        if self.gpus:
            for i in range(self.gpus):
                dev = r / "dev" / f"fakegpu{i}"
                if not dev.exists():
                    subprocess.run([_bin("mknod"), str(dev), "c", "1", "3"], check=True)
            (r / "etc" / "gres.conf").write_text(
                "AutoDetect=off\n"
                f"NodeName={self.node} Name=gpu Count={self.gpus} "
                f"File={r}/dev/fakegpu[0-{self.gpus - 1}]\n")
            gres = f" Gres=gpu:{self.gpus}"
        self.conf.write_text(f"""# CPN lab cluster {self.name}
ClusterName={self.name}
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={munge}/sock
CredType=cred/munge
StateSaveLocation={r}/state
SlurmdSpoolDir={self.spool}/%n
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={self.jobcomp}
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
DebugFlags=NO_CONF_HASH
MinJobAge=3600
MaxJobCount=100000
SchedulerParameters=sched_interval=2,sched_min_interval=100000,default_queue_depth=1000
MessageTimeout=5
InactiveLimit=0
KillWait=2
{"GresTypes=gpu" if self.gpus else ""}
NodeName={self.node} NodeHostname=localhost NodeAddr=127.0.0.1 Port={self.slurmd_port} \
CPUs={self.cpus} RealMemory={self.memory_mib}{gres} State=UNKNOWN
PartitionName=batch Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")

    def start(self, timeout_s: float = 30.0) -> None:
        why = available()
        if why:
            raise LabError(why)
        self._write()
        self.started = True
        m = self.munge
        subprocess.run(["runuser", "-u", "munge", "--", _bin("munged"), f"--key-file={m}/key",
                        f"--socket={m}/sock", f"--pid-file={m}/pid", f"--log-file={m}/log",
                        f"--seed-file={m}/seed"], check=True, timeout=20)
        self.start_controller(clean=True)
        subprocess.run([_bin("slurmd"), "-f", str(self.conf), "-N", self.node], check=True,
                       timeout=20)
        self.wait_idle(timeout_s)
        if self.with_rest:
            self.start_rest(timeout_s)

    def start_rest(self, timeout_s: float = 30.0) -> None:
        """slurmrestd on a unix socket in a directory of user slurm (it drops to it)."""
        d = self._rest_dir = Path(tempfile.mkdtemp(prefix="cpn-rest-", dir="/tmp"))
        shutil.chown(d, "slurm", "slurm")
        d.chmod(0o755)
        sock = d / "sock"
        conf = d / "slurm.conf"  # it reads its config as user slurm: a copy it can reach
        shutil.copyfile(self.conf, conf)
        conf.chmod(0o644)
        log = (self.root / "log" / "slurmrestd.log").open("ab")
        self._restd = subprocess.Popen(
            [_bin("slurmrestd"), "-f", str(conf), "-u", "slurm", "-g", "slurm",
             "-a", "rest_auth/local", "-s", "openapi/v0.0.38", "-t", "8", f"unix:{sock}"],
            env={**os.environ, "SLURM_CONF": str(conf)}, stdin=subprocess.DEVNULL,
            stdout=log, stderr=log)
        log.close()
        end = time.monotonic() + timeout_s
        while not sock.exists():
            if self._restd.poll() is not None or time.monotonic() > end:
                raise LabError(f"slurmrestd of {self.name} did not start; see "
                               f"{self.root}/log/slurmrestd.log")
            time.sleep(0.05)
        self.rest = f"unix:{sock}"

    def start_controller(self, clean: bool = False) -> None:
        args = [_bin("slurmctld"), "-f", str(self.conf)]
        subprocess.run([*args, "-i"] if clean else args, check=True, timeout=20)

    def stop_controller(self) -> None:
        """The centre's scheduler goes down (slurmd and running jobs go on)."""
        _kill(self.root / "slurmctld.pid")

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        end = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < end:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.env,
                                 capture_output=True, text=True, timeout=10)
            last = (out.stdout + out.stderr).strip()
            if out.returncode == 0 and last in ("idle", "mixed", "allocated"):
                return
            time.sleep(0.3)
        raise LabError(f"Slurm cluster {self.name} not ready in {timeout_s:g} s "
                       f"(sinfo: {last!r}); see {self.root}/log")

    def stop(self) -> None:
        if not self.started:
            return
        for user in (str(os.geteuid()), *(["slurm"] if self.with_rest else [])):
            subprocess.run(["scancel", "--full", f"--user={user}"], env=self.env,
                           capture_output=True, timeout=10, check=False)
        if self._restd is not None:
            self._restd.terminate()
            try:
                self._restd.wait(10)
            except subprocess.TimeoutExpired:
                self._restd.kill()
                self._restd.wait()
            self._restd = None
        _kill(self.root / "slurmd.pid")
        _kill(self.root / "slurmctld.pid")
        _kill(self.munge / "pid")
        self._reap_jobs()
        shutil.rmtree(self.munge, ignore_errors=True)
        shutil.rmtree(self.spool, ignore_errors=True)
        if self._rest_dir is not None:
            shutil.rmtree(self._rest_dir, ignore_errors=True)
        if self.with_rest:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.started = False

    def _reap_jobs(self) -> None:
        """Job processes left behind (slurmstepd outlives a killed slurmd): those whose
        working directory is inside this cluster's tree, by pid."""
        root = str(self.root.resolve())
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            if cwd == root or cwd.startswith((root + "/", str(self.spool) + "/",
                                              str(self.workdir) + "/")):
                try:
                    os.kill(int(proc.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
