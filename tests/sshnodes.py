"""A real OpenSSH testbed on loopback: good nodes and faulty ones, no root's ~/.ssh touched.

Used by the test suite (tests/conftest.py) and by the benchmarks (bench/).
Good node ``nK`` is its own address 127.0.0.(K+1) on one port (past 240 nodes,
127.1.x.y), served by one ``sshd -f <config>`` per 16 addresses. Faulty nodes: ``refused`` (nothing
listens), ``hung`` (accepts TCP and never speaks), ``stall`` (sends an SSH
banner, then never another byte), ``badauth`` (its key is not authorised),
``busy`` (a good node whose sshd has ``MaxStartups 2:50:4`` and ``MaxSessions 2``:
it drops handshakes beyond two in flight and refuses a third session on a connection);
``behind1``, ``behind2``, ... reach n1 through ``busy`` as their ProxyJump host.
Any other name reaches ``refused``'s address (a final ``Host * !127.*``), so that
no made-up node name of a test is ever looked up in DNS; 127.x.y.z addresses are
left as they are. And ``othershell``: a good node (127.0.0.252, an sshd of its
own) whose sessions see ``$SHELL`` as a bash at a path clstr does not know, so
jobs there take the remote wrapper's route for unknown login shells. And
``nosh``: a restricted account (127.0.0.254, an sshd of its own) whose PATH finds
nothing, not even sh: bash's builtins run, clstr's job loop cannot start there.
Traffic stays on 127.0.0.0/8.
"""
import getpass
import os
import shlex
import shutil
import socket
import subprocess
import threading

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
PER_SSHD = 16  # sshd listens on at most 16 addresses


# scp's protocol since OpenSSH 9: the server Debian's sshd_config names (a process of its own,
# as on the nodes people copy to), or sshd's own where it is not installed
SFTP_SERVER = next((p for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                                "/usr/libexec/sftp-server") if os.path.exists(p)), "internal-sftp")


def _free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


LAST_LOW = 241  # good nodes take 127.0.0.first_octet .. .241, then 127.1.x.y; .250 up are the faulty ones


def _address(i, first_octet):
    """Node ``i``'s address (from 1): 127.0.0.(first_octet + i - 1) up to .241, then 127.1.x.1-250."""
    if first_octet + i - 1 <= LAST_LOW:
        return f"127.0.0.{first_octet + i - 1}"
    k = i - (LAST_LOW - first_octet + 1) - 1
    if k >= 250 * 256:
        raise ValueError("too many nodes for 127.1.0.0/16")
    return f"127.1.{k // 250}.{k % 250 + 1}"


def _keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "clstr-test", "-f", path],
                   check=True, stdin=subprocess.DEVNULL)


class _Sshd:
    """One sshd process; ready once it logged that it listens on all its addresses."""

    def __init__(self, config, addresses):
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", config], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.waiting = set(addresses)
        self.ready = threading.Event()
        self.log = []
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        # read sshd's log for as long as it runs, so that its pipe never fills
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.log.append(line)
            if line.startswith("Server listening on "):
                self.waiting.discard(line.split()[3])
                if not self.waiting:
                    self.ready.set()
        self.ready.set()  # it exited: wait() below reports that

    def wait(self, timeout=20):
        if not self.ready.wait(timeout) or self.proc.poll() is not None:
            raise RuntimeError("sshd did not start:\n" + "\n".join(self.log[-20:]))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Testbed:
    """``count`` good nodes n1..nCOUNT plus the faulty ones, described by one ssh_config."""

    __test__ = False  # not a test class, whoever imports it

    def __init__(self, root, count=4, first_octet=2, max_sessions=16, per_sshd=PER_SSHD):
        self.root = str(root)
        self.count = count
        self.user = getpass.getuser()
        self.port = _free_port()
        self.good = [f"n{i}" for i in range(1, count + 1)]
        self.addr = {f"n{i}": _address(i, first_octet) for i in range(1, count + 1)}
        self.refused_addr = "127.0.0.250"
        self.hung_addr = "127.0.0.251"
        self.othershell_addr = "127.0.0.252"
        self.stall_addr = "127.0.0.253"
        self.nosh_addr = "127.0.0.254"
        self.busy_addr = "127.0.0.249"
        self.max_sessions = max_sessions
        self.per_sshd = per_sshd  # 1: each node an sshd of its own, to stop or freeze alone
        self.sshds = []
        self.hung = None
        self.stall = None

    # ---- setup ----------------------------------------------------------
    def start(self):
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
        os.makedirs(self.root, exist_ok=True)
        self.host_key = os.path.join(self.root, "host_key")
        self.client_key = os.path.join(self.root, "client_key")
        self.bad_key = os.path.join(self.root, "bad_key")
        for k in (self.host_key, self.client_key, self.bad_key):
            _keygen(k)
        self.authorized = os.path.join(self.root, "authorized_keys")
        shutil.copy(self.client_key + ".pub", self.authorized)
        addrs = list(self.addr.values())
        per = self.per_sshd
        for i in range(0, len(addrs), per):
            chunk = addrs[i:i + per]
            cfg = os.path.join(self.root, f"sshd_config.{i // per}")
            with open(cfg, "w") as f:
                f.write(self._sshd_config(chunk, i // per))
            self.sshds.append(_Sshd(cfg, chunk))
        # othershell: bash under a name of its own, announced as the login shell ($SHELL)
        self.other_shell = os.path.join(self.root, "bin", "othersh")
        os.makedirs(os.path.dirname(self.other_shell), exist_ok=True)
        os.symlink(shutil.which("bash") or "/bin/bash", self.other_shell)
        cfg = os.path.join(self.root, "sshd_config.othershell")
        with open(cfg, "w") as f:
            f.write(self._sshd_config([self.othershell_addr], "othershell")
                    + f"Match LocalAddress {self.othershell_addr}\n  SetEnv SHLVL=1 SHELL={self.other_shell}\n")
        self.sshds.append(_Sshd(cfg, [self.othershell_addr]))
        # nosh: a restricted account whose PATH has no sh (nor anything else): bash's builtins only
        cfg = os.path.join(self.root, "sshd_config.nosh")
        with open(cfg, "w") as f:
            f.write(self._sshd_config([self.nosh_addr], "nosh")
                    + f"Match LocalAddress {self.nosh_addr}\n  SetEnv PATH=/nonexistent SHELL=/bin/bash\n")
        self.sshds.append(_Sshd(cfg, [self.nosh_addr]))
        # busy: an sshd that refuses handshakes beyond MaxStartups 2:50:4 and sessions beyond
        # MaxSessions 2 on a connection, as a loaded or strictly configured host does
        cfg = os.path.join(self.root, "sshd_config.busy")
        with open(cfg, "w") as f:
            f.write(self._sshd_config([self.busy_addr], "busy", max_startups="2:50:4", max_sessions=2))
        self.sshds.append(_Sshd(cfg, [self.busy_addr]))
        # hung: the kernel completes the TCP handshake from the backlog; nobody ever speaks
        self.hung = socket.socket()
        self.hung.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.hung.bind((self.hung_addr, self.port))
        self.hung.listen(64)
        # stall: answers with a banner, then stops speaking (key exchange never completes)
        self.stall = socket.socket()
        self.stall.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.stall.bind((self.stall_addr, self.port))
        self.stall.listen(64)
        self._stalled = []
        threading.Thread(target=self._serve_stall, daemon=True).start()
        self.ssh_config = os.path.join(self.root, "ssh_config")
        with open(self.ssh_config, "w") as f:
            f.write(self._ssh_config())
        for d in self.sshds:
            d.wait()
        return self

    def _serve_stall(self):
        while True:
            try:
                conn, _ = self.stall.accept()
                conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 stall\r\n")
            except OSError:
                return  # closed: the testbed stopped
            self._stalled.append(conn)  # held open, never read

    def _sshd_config(self, addresses, n, max_startups="2000", max_sessions=None):
        listen = "".join(f"ListenAddress {a}\n" for a in addresses)
        return f"""\
Port {self.port}
{listen}HostKey {self.host_key}
PidFile {self.root}/sshd.{n}.pid
AuthorizedKeysFile {self.authorized} .ssh/authorized_keys
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin yes
MaxStartups {max_startups}
MaxSessions {max_sessions or self.max_sessions}
KexAlgorithms curve25519-sha256
SetEnv SHLVL=1
Subsystem sftp {SFTP_SERVER}
LogLevel INFO
# a login user of the tests whose PATH has no rsync (tests/sudonodes.py)
Match User clstr-t-nr
  SetEnv PATH=/home/clstr-t-nr/bin
"""

    def _ssh_config(self):
        # IdentityFile accumulates across Host blocks: each host names its key alone
        key = f"  IdentityFile {self.client_key}\n"
        hosts = "".join(f"Host {name}\n  HostName {a}\n{key}" for name, a in self.addr.items())
        first = next(iter(self.addr.values()))
        return f"""\
{hosts}Host refused
  HostName {self.refused_addr}
{key}Host hung
  HostName {self.hung_addr}
{key}Host stall
  HostName {self.stall_addr}
{key}Host othershell
  HostName {self.othershell_addr}
{key}Host nosh
  HostName {self.nosh_addr}
{key}Host busy
  HostName {self.busy_addr}
{key}Host badauth
  HostName {first}
  IdentityFile {self.bad_key}
Host behind*
  HostName {first}
  ProxyJump busy
{key}Host * !127.*
  HostName {self.refused_addr}
Host 127.*
{key}Host *
  Port {self.port}
  User {self.user}
  IdentitiesOnly yes
  BatchMode yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  GlobalKnownHostsFile /dev/null
  LogLevel ERROR
  KexAlgorithms curve25519-sha256
"""

    @property
    def ssh(self):
        """The --ssh value that points clstr at this testbed."""
        return f"ssh -F {shlex.quote(self.ssh_config)}"

    def sshd_tree(self, node):
        """The sshd listening for ``node`` and every session process under it (with per_sshd=1: that node's alone)."""
        import psutil
        d = self.sshds[list(self.addr).index(node) // self.per_sshd]
        parent = psutil.Process(d.proc.pid)
        return [parent] + parent.children(recursive=True)

    def session_processes(self, node):
        """The sshd processes serving connections to ``node`` (to stop or kill it mid-job)."""
        import psutil
        addr = self.addr[node]
        found = []
        for d in self.sshds:
            for child in psutil.Process(d.proc.pid).children(recursive=True):
                try:
                    conns = getattr(child, "net_connections", None) or child.connections
                    if any(c.laddr and c.laddr.ip == addr for c in conns("tcp")):
                        found.append(child)
                except psutil.Error:
                    continue
        return found

    def stop(self):
        for d in self.sshds:
            d.stop()
        for sock in [self.hung, self.stall] + getattr(self, "_stalled", []):
            if sock is not None:
                sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Relay:
    """A node that is down until the test brings it up: ``name`` (a loopback address of its own)
    refuses connections until ``up()``, then relays each to a good node's sshd; ``down()`` drops
    the listener and every connection (the node died). Traffic stays on loopback."""

    def __init__(self, tb, address, target="n1"):
        self.name = address
        self.port = tb.port
        self.target = (tb.addr[target], tb.port)
        self.listener = None
        self.conns = []
        self.lock = threading.Lock()

    def up(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((self.name, self.port))
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()
        return self

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
                server = socket.create_connection(self.target)
            except OSError:
                return
            with self.lock:
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    quiet = False  # reboot(): the node's side of a connection ends without the client being told

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        with self.lock:
            node_side = src in self.conns[1::2]
        if self.quiet and node_side:
            return  # the client learns it only when it next sends
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def reboot(self):
        """The node restarts without a word: the far ends of its connections are gone, and a client
        learns it only when it next sends (as from a rebooted host, which answers with a reset)."""
        self.quiet = True
        with self.lock:
            servers = self.conns[1::2]
        for sock in servers:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def down(self):
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it (Linux)
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        with self.lock:
            conns, self.conns = self.conns, []
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def ensure_sshd(install=True):
    """The sshd to run, installing openssh-server first where this machine can (root, apt-get).

    Returns the path, or None with the reason printed in one line.
    """
    import sys
    path = os.environ.get("CLSTR_TESTBED_SSHD") or SSHD
    if os.access(path, os.X_OK):
        return path
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        print("sshnodes: sshd not found; installing openssh-server (apt-get)", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        ok = subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL).returncode == 0 and \
            subprocess.run(["apt-get", "install", "-y", "-qq", "openssh-server"], env=env,
                           stdout=subprocess.DEVNULL).returncode == 0
        if ok and os.access(path, os.X_OK):
            return path
    print(f"sshnodes: {path} not found: install OpenSSH's server (Debian/Ubuntu: apt-get install openssh-server)",
          file=sys.stderr)
    return None


def main(argv=None):
    """``python3 tests/sshnodes.py [--nodes N] -- CMD ...``: run CMD with a loopback testbed up.

    CMD sees CLSTR_SSH pointing at the testbed, so ``clstr -n n1 -n n2 ...`` reaches
    real sshd nodes named n1..nN (and refused, hung, stall, badauth, othershell).
    Installs openssh-server when sshd is missing and it can (as root, with apt-get).
    """
    import argparse
    import sys
    import tempfile
    p = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--no-install", action="store_true", help="do not install openssh-server when sshd is missing")
    p.add_argument("command", nargs="+")
    args = p.parse_args(argv)
    global SSHD
    sshd = ensure_sshd(install=not args.no_install)
    if sshd is None:
        return 2
    SSHD = sshd
    if shutil.which(args.command[0]) is None:
        print(f"sshnodes: {args.command[0]}: command not found (did 'pip install .' work?)", file=sys.stderr)
        return 127
    with tempfile.TemporaryDirectory(prefix="clstr-testbed-") as root:
        try:
            tb = Testbed(root, count=args.nodes).start()
        except (OSError, RuntimeError, ValueError, subprocess.CalledProcessError) as e:
            print(f"sshnodes: the testbed did not start: {str(e).splitlines()[0] if str(e) else e}", file=sys.stderr)
            return 2
        try:
            env = dict(os.environ, CLSTR_SSH=tb.ssh)
            return subprocess.call(args.command, env=env)
        finally:
            tb.stop()


if __name__ == "__main__":
    raise SystemExit(main())
