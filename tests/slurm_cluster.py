"""A real one-node Slurm cluster on localhost for tests: munged, slurmctld and slurmd started (and stopped) by PID.

Everything lives in a fresh temporary folder: the munge socket, slurm.conf (clients find it through ``SLURM_CONF``),
state, spool, logs and free ports, so it never touches a system munged or Slurm, nor another cluster beside it.
Measured facts behind each setting: ``../shared/SLURM.md`` (Debian 12, Slurm 22.05, munge 0.5.15, root, no systemd).

    ensure_slurm_installed()
    with local_slurm() as cluster:
        job = cluster.submit(["--ntasks-per-node=2", "job.sbatch"])
        cluster.wait_for_job(job, lambda fields: fields["JobState"] == "COMPLETED", 120, "completion")
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
# The executables those packages bring that the cluster uses.
EXECUTABLES = ("slurmctld", "slurmd", "sbatch", "srun", "scontrol", "squeue", "scancel", "munged", "munge", "unmunge")
MUNGE_KEY = Path("/etc/munge/munge.key")  # the munge package creates it at install
TERMINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


class SlurmClusterError(RuntimeError):
    """The local cluster could not be installed, started or queried."""


def _executable(name: str) -> str | None:
    # The daemons live in /usr/sbin, which a PATH may lack.
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin")


def _missing_executables() -> list[str]:
    return [name for name in EXECUTABLES if _executable(name) is None]


def ensure_slurm_installed(timeout: float = 240) -> None:
    """Install Debian's Slurm and munge packages when any of their executables is missing; raise if that fails."""
    missing = _missing_executables()
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SlurmClusterError(
            f"Slurm test: {', '.join(missing)} missing and apt-get is not usable here (needs root on Debian/Ubuntu): "
            f"install {' '.join(PACKAGES)} by hand"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES],
    ):
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
        if result.returncode != 0:
            raise SlurmClusterError(
                f"Slurm test: `{' '.join(command)}` failed (exit {result.returncode}): "
                f"{(result.stdout + result.stderr)[-2000:]}"
            )
    missing = _missing_executables()
    if missing:
        raise SlurmClusterError(f"Slurm test: {', '.join(missing)} still missing after installing {' '.join(PACKAGES)}")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _node_line() -> str:
    """This machine's ``NodeName=... CPUs=...`` line from ``slurmd -C``, without ``RealMemory``.

    A memory reading slightly below the configured one would drain the node.
    """
    result = subprocess.run([_executable("slurmd") or "slurmd", "-C"], capture_output=True, text=True, timeout=30)
    if result.returncode != 0 or not result.stdout.startswith("NodeName="):
        raise SlurmClusterError(f"Slurm test: `slurmd -C` did not describe this node: {result.stderr.strip()}")
    first = result.stdout.splitlines()[0]
    return " ".join(field for field in first.split() if not field.startswith("RealMemory="))


def _slurm_conf(root: Path, munge_socket: Path, ctld_port: int, slurmd_port: int) -> str:
    host = socket.gethostname().split(".")[0]
    return "\n".join(
        [
            "ClusterName=signs-test",
            # Pinned addresses: nothing depends on name resolution.
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            # cred_expire: a requeued job may only start again once its old credential expired (default 120 s).
            f"AuthInfo=socket={munge_socket},cred_expire=10",
            "SchedulerParameters=sched_interval=2,bf_interval=2",
            "MpiDefault=none",
            # No cgroups and no systemd here.
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "ReturnToService=2",
            "JobRequeue=1",
            # Otherwise a requeue truncates the job's output file.
            "JobFileAppend=1",
            "KillWait=5",
            "MailProg=/bin/true",
            f"StateSaveLocation={root / 'state'}",
            f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={root / 'slurmctld.pid'}",
            f"SlurmdPidFile={root / 'slurmd.pid'}",
            f"SlurmctldLogFile={root / 'slurmctld.log'}",
            f"SlurmdLogFile={root / 'slurmd.log'}",
            f"{_node_line()} NodeAddr=127.0.0.1 State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the process (by its PID), SIGKILL it if it is still alive 10 s later, and reap it."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class LocalSlurm:
    """One-node Slurm in ``root``; ``start`` and ``stop`` it, run client commands with ``run``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "slurm.conf"
        self.munge_socket = root / "munge" / "munge.socket"
        # Client commands (and jobs, which inherit sbatch's environment) find this cluster through SLURM_CONF.
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.daemons: dict[str, subprocess.Popen] = {}

    # -- daemons ------------------------------------------------------------------------------------------------
    def start(self, timeout: float = 60) -> None:
        """Start munged, slurmctld and slurmd; return once the node is idle."""
        if not MUNGE_KEY.is_file():
            raise SlurmClusterError(f"Slurm test: {MUNGE_KEY} is missing: reinstall munge (its install creates it)")
        for folder in ("state", "spool"):
            (self.root / folder).mkdir(parents=True)
        self._start_munged()
        ctld_port, slurmd_port = _free_ports(2)
        self.conf.write_text(_slurm_conf(self.root, self.munge_socket, ctld_port, slurmd_port))
        for daemon in ("slurmctld", "slurmd"):
            with open(self.root / f"{daemon}.out", "wb") as log:
                self.daemons[daemon] = subprocess.Popen(
                    [_executable(daemon) or daemon, "-D", "-f", str(self.conf)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                )
        self._wait(lambda: self.node_state() == "IDLE", timeout, "the node to be idle")

    def _start_munged(self) -> None:
        munge_dir = self.munge_socket.parent
        munge_dir.mkdir()
        # munged refuses to run as root ("Logfile is insecure"), wants only its user to write its folder, and every
        # user to reach its socket.
        shutil.chown(munge_dir, "munge", "munge")
        munge_dir.chmod(0o755)
        with open(self.root / "munged.out", "wb") as log:
            self.daemons["munged"] = subprocess.Popen(
                [
                    _executable("munged") or "munged",
                    "--foreground",
                    f"--socket={self.munge_socket}",
                    f"--key-file={MUNGE_KEY}",
                    f"--log-file={munge_dir / 'munged.log'}",
                    f"--pid-file={munge_dir / 'munged.pid'}",
                    f"--seed-file={munge_dir / 'munged.seed'}",
                ],
                user="munge",
                group="munge",
                extra_groups=[],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait(self._munge_works, 20, "munged to answer")

    def _munge_works(self) -> bool:
        credential = subprocess.run(["munge", "-n", "-S", str(self.munge_socket)], capture_output=True, timeout=10)
        if credential.returncode != 0:
            return False
        decoded = subprocess.run(
            ["unmunge", "-S", str(self.munge_socket)], input=credential.stdout, capture_output=True, timeout=10
        )
        return decoded.returncode == 0

    def stop(self) -> None:
        """Cancel every job, stop slurmd, slurmctld and munged by PID, and wipe the folder (spool, state, logs).

        Raises (after stopping the daemons) if jobs were still running: their processes may outlive the cluster.
        """
        left: str | None = None
        if "slurmctld" in self.daemons and self.daemons["slurmctld"].poll() is None:
            # slurmstepd outlives slurmd: end the jobs while the daemons can still do it.
            subprocess.run(["scancel", "--full", "--user", "root"], env=self.env, capture_output=True, timeout=30)
            try:
                self._wait(lambda: not self.run(["squeue", "-h", "-o", "%i"]).strip(), 30, "the jobs to end")
            except (SlurmClusterError, subprocess.TimeoutExpired) as error:
                left = str(error)
        for daemon in ("slurmd", "slurmctld", "munged"):
            if daemon in self.daemons:
                _stop(self.daemons.pop(daemon))
        shutil.rmtree(self.root, ignore_errors=True)
        if left is not None:
            raise SlurmClusterError(f"Slurm test: jobs did not end after scancel, look for stray job processes: {left}")

    # -- clients ------------------------------------------------------------------------------------------------
    def run(self, command: list[str], timeout: float = 30) -> str:
        """Run a Slurm client command against this cluster; its stdout, or an error with its output."""
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=self.env)
        if result.returncode != 0:
            raise SlurmClusterError(f"`{' '.join(command)}` failed (exit {result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def submit(self, sbatch_arguments: list[str], env: dict[str, str] | None = None) -> int:
        """``sbatch --parsable ...`` with this cluster's environment plus ``env``; the job id."""
        result = subprocess.run(
            ["sbatch", "--parsable", *sbatch_arguments],
            capture_output=True,
            text=True,
            timeout=30,
            env={**self.env, **(env or {})},
        )
        if result.returncode != 0:
            raise SlurmClusterError(f"sbatch failed (exit {result.returncode}): {result.stderr.strip()}")
        return int(result.stdout.strip().split(";")[0])

    def node_state(self) -> str:
        fields = self.run(["scontrol", "show", "node", "-o"]).split()
        return next((f.split("=", 1)[1] for f in fields if f.startswith("State=")), "UNKNOWN")

    def job(self, job_id: int) -> dict[str, str]:
        """``scontrol show job``'s fields (JobState, Restarts, ExitCode, StdOut, ...); accounting is off."""
        fields = self.run(["scontrol", "show", "job", "-o", str(job_id)]).split()
        return dict(field.split("=", 1) for field in fields if "=" in field)

    def wait_for_job(
        self, job_id: int, condition: Callable[[dict[str, str]], bool], timeout: float, what: str
    ) -> dict[str, str]:
        """Poll ``scontrol show job`` until ``condition(fields)``; raise if the job ends first or time runs out."""
        record: dict[str, str] = {}

        def reached() -> bool:
            record.update(self.job(job_id))
            if condition(record):
                return True
            if record["JobState"] in TERMINAL_STATES:
                raise SlurmClusterError(f"job {job_id} ended {record['JobState']} while waiting for {what}: {record}")
            return False

        self._wait(reached, timeout, f"job {job_id}: {what}")
        return record

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise SlurmClusterError(f"timed out after {timeout:.0f} s waiting for {what}; logs: {self.logs()}")
            for daemon, process in self.daemons.items():
                if process.poll() is not None:
                    raise SlurmClusterError(
                        f"{daemon} (pid {process.pid}) exited {process.returncode} while waiting for {what}; "
                        f"logs: {self.logs()}"
                    )
            time.sleep(0.5)

    def logs(self, tail: int = 1500) -> str:
        """The end of every daemon log, for error messages."""
        parts = []
        paths = [*sorted(self.root.glob("*.log")), *sorted(self.root.glob("*.out")), self.root / "munge" / "munged.log"]
        for path in paths:
            if path.is_file():
                parts.append(f"--- {path.name}:\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)


@contextmanager
def local_slurm() -> Iterator[LocalSlurm]:
    """A started ``LocalSlurm`` in a fresh folder, stopped and wiped on exit."""
    # Not under pytest's tmp_path: the munge user must be able to reach its socket folder (pytest's folders are 0700).
    root = Path(tempfile.mkdtemp(prefix="signs-slurm-"))
    root.chmod(0o755)
    cluster = LocalSlurm(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
