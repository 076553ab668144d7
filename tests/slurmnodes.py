"""A real Slurm on this machine for the tests: munged, slurmctld and one emulated slurmd a node.

Debian's ``slurm-wlm`` and ``slurm-wlm-emulator``: ``slurmd-wlm-emulator -N snK`` runs node snK
(several on one host, a port each, ``NodeHostname=localhost``); the controller is the real
``slurmctld-wlm`` (the emulator's controller wants front-end nodes). Everything lives under one
directory of the test's, with a munge key made for it and a socket of its own; nothing listens
beyond 127.0.0.1, nothing in /etc is touched. Daemons run as the user running the tests (root in
CI, as Slurm's daemons want).

    with SlurmTestbed(tmpdir, nodes=4) as slurm:
        job = slurm.allocate(4)           # an allocation of 4 nodes, held with no shell
        env = slurm.env(job)              # what a shell inside it would have: SLURM_JOB_ID ...
"""
import os
import shutil
import socket
import subprocess
import time

SLURMCTLD = "slurmctld-wlm"
SLURMD = "slurmd-wlm-emulator"


def available():
    """Why a Slurm testbed cannot run here (a line), or None."""
    for prog in (SLURMCTLD, SLURMD, "munged", "srun", "salloc", "scontrol"):
        if shutil.which(prog) is None and not os.path.exists(f"/usr/sbin/{prog}"):
            return f"{prog} not found: install slurm-wlm, slurm-wlm-emulator and munge"
    return None


def _free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _program(name):
    return shutil.which(name) or f"/usr/sbin/{name}"


class SlurmTestbed:
    """munged, slurmctld and ``nodes`` emulated slurmds (sn1..snN, ``cpus`` CPUs each)."""

    def __init__(self, root, nodes=4, cpus=2):
        self.root = str(root)
        self.names = [f"sn{i}" for i in range(1, nodes + 1)]
        self.cpus = cpus
        self.conf = os.path.join(self.root, "slurm.conf")
        self.socket = os.path.join(self.root, "munge.sock")
        self.pids = []  # (name, pid file) of each daemon started
        self.allocations = {}  # job id -> its salloc process
        self.made = 0  # allocations made
        self.inside = {}  # job id -> the SLURM_* environment of a shell inside it

    # ---- set up -------------------------------------------------------
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        os.makedirs(self.root, exist_ok=True)
        os.chmod(self.root, 0o755)
        for sub in ("state", "log", *[f"spool/{n}" for n in self.names]):
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
        key = os.path.join(self.root, "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o600)
        self._daemon("munged", [_program("munged"), "-f", f"--socket={self.socket}", f"--key-file={key}",
                                f"--pid-file={self.root}/munged.pid", f"--log-file={self.root}/log/munged.log",
                                f"--seed-file={self.root}/munged.seed"], f"{self.root}/munged.pid")
        ctl, *ports = _free_ports(1 + len(self.names))
        with open(self.conf, "w") as f:
            f.write(self._config(ctl, ports))
        self._daemon("slurmctld", [_program(SLURMCTLD), "-f", self.conf], f"{self.root}/slurmctld.pid")
        for name in self.names:
            self._daemon(name, [_program(SLURMD), "-f", self.conf, "-N", name], f"{self.root}/slurmd-{name}.pid")
        self._wait_idle()

    def _config(self, ctl, ports):
        r = self.root
        nodes = "".join(f"NodeName={n} NodeHostname=localhost NodeAddr=127.0.0.1 Port={p} CPUs={self.cpus} "
                        "State=UNKNOWN\n" for n, p in zip(self.names, ports))
        user = os.environ.get("USER") or "root"
        return (f"ClusterName=clstrtest\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort={ctl}\n"
                f"AuthType=auth/munge\nAuthInfo=socket={self.socket}\nCredType=cred/munge\n"
                f"SlurmUser={user}\nSlurmdUser={user}\nStateSaveLocation={r}/state\nSlurmdSpoolDir={r}/spool/%n\n"
                f"SlurmctldPidFile={r}/slurmctld.pid\nSlurmdPidFile={r}/slurmd-%n.pid\n"
                f"SlurmctldLogFile={r}/log/slurmctld.log\nSlurmdLogFile={r}/log/slurmd-%n.log\n"
                "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nSchedulerType=sched/backfill\n"
                "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nMpiDefault=none\nReturnToService=2\nMessageTimeout=4\n"
                "JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n"
                "MailProg=/bin/true\nSlurmdTimeout=300\nInactiveLimit=0\nKillWait=2\n"
                + nodes + f"PartitionName=test Nodes={','.join(self.names)} Default=YES MaxTime=INFINITE State=UP\n")

    def _daemon(self, name, argv, pidfile):
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
                           env=self.env())
        if r.returncode != 0:
            raise RuntimeError(f"{name} did not start ({r.returncode}): {r.stderr.strip()[-500:]}")
        self.pids.append((name, pidfile))

    def _wait_idle(self, timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r = self.run("sinfo", "-h", "-N", "-o", "%N %t")
            states = dict(line.split() for line in r.stdout.splitlines() if line.strip())
            if r.returncode == 0 and all(states.get(n) == "idle" for n in self.names):
                return
            time.sleep(0.2)
        raise RuntimeError(f"slurm nodes not idle after {timeout} s: {self.run('sinfo').stdout}")

    # ---- use ----------------------------------------------------------
    def env(self, job=None, **extra):
        """The environment of Slurm's commands here; with ``job`` (from ``allocate``), as the shell
        salloc started inside it has it (SLURM_JOB_ID, SLURM_JOB_NODELIST, ...)."""
        env = dict(os.environ, SLURM_CONF=self.conf)
        for key in [k for k in env if k.startswith("SLURM_") and k != "SLURM_CONF"]:
            del env[key]
        if job is not None:
            env.update(self.inside[job])
        env.update(extra)
        return env

    def run(self, *argv, job=None, timeout=30):
        return subprocess.run(list(argv), capture_output=True, text=True, env=self.env(job), timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def allocate(self, nodes, *more, timeout=60):
        """A new allocation of ``nodes`` nodes: its job id. salloc runs a shell that writes its
        environment and waits; ``env(job)`` is that environment."""
        self.made += 1
        out = os.path.join(self.root, f"alloc-{self.made}.env")
        proc = subprocess.Popen(["salloc", f"-N{nodes}", "-J", "clstr-test", *more, "sh", "-c",
                                 f"env > {out}.part && mv {out}.part {out} && exec sleep 3600"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=self.env())
        end = time.monotonic() + timeout
        while not os.path.exists(out):
            if proc.poll() is not None or time.monotonic() > end:
                proc.kill()
                raise RuntimeError(f"salloc failed: {proc.stderr.read().decode(errors='replace').strip()}")
            time.sleep(0.05)
        with open(out) as f:
            inside = dict(line.split("=", 1) for line in f.read().splitlines() if line.startswith("SLURM_"))
        job = int(inside["SLURM_JOB_ID"])
        self.inside[job] = inside
        self.allocations[job] = proc
        return job

    def job(self, job):
        r = self.run("scontrol", "show", "job", str(job), "-o")
        return dict(item.split("=", 1) for item in r.stdout.split() if "=" in item)

    def steps(self, job):
        """The running steps of ``job``: {step id: name}."""
        r = self.run("squeue", "-h", "-s", "-j", str(job), "-o", "%i %j")
        return dict(line.split(None, 1) for line in r.stdout.splitlines() if line.strip())

    def release(self, job):
        self.run("scancel", str(job))
        proc = self.allocations.pop(job, None)
        if proc is not None:
            proc.kill()
            proc.wait()

    def stop_node(self, name):
        """End node ``name``'s slurmd (as a node that died); returns its pid."""
        pid = self._pid(f"{self.root}/slurmd-{name}.pid")
        if pid:
            _end(pid)
        return pid

    def start_node(self, name):
        self._daemon(name, [_program(SLURMD), "-f", self.conf, "-N", name], f"{self.root}/slurmd-{name}.pid")

    def stop(self):
        for job in list(self.allocations):
            self.release(job)
        for name, pidfile in reversed(self.pids):
            pid = self._pid(pidfile)
            if pid:
                _end(pid)
        self.pids = []

    @staticmethod
    def _pid(pidfile):
        try:
            with open(pidfile) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0


def _gone(pid):
    """Whether ``pid`` has ended (a zombie no one reaps counts: daemons are reparented away)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        return True


def _end(pid, grace=5.0):
    import signal
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + grace
    while time.monotonic() < end:
        if _gone(pid):
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
