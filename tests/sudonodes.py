"""Login users of the testbed's nodes for the tests: a real sudo (non-root users and sudoers rules
for them), and a node without rsync.

Each user logs in to the testbed's sshd with the testbed's client key (its own
~/.ssh/authorized_keys) and has a password; sudoers (/etc/sudoers.d/clstr-tests) gives them:
  clstr-t-pw   sudo with its password, asked every time (timestamp_timeout=0: no ticket kept)
  clstr-t-np   sudo with NOPASSWD
  clstr-t-tty  sudo with its password, but only from a terminal (Defaults requiretty)
  clstr-t-no   no sudo at all
  clstr-t-nr   no rsync: the testbed's sshd gives it a PATH (SetEnv) of ~/bin, every program of
               /usr/bin but rsync
Made once a machine (as root; the CI machine's tests run as root) and kept: creating users is
slow, and the rules name only these users. ``ensure`` says why where it cannot.
"""
import os
import pwd
import shutil
import subprocess

PASSWORD = "clstr-Right-pw-7"
USERS = {"pw": "clstr-t-pw", "np": "clstr-t-np", "tty": "clstr-t-tty", "no": "clstr-t-no", "nr": "clstr-t-nr"}
SUDOERS = "/etc/sudoers.d/clstr-tests"
RULES = f"""\
Defaults:{USERS['pw']} timestamp_timeout=0, lecture=never
Defaults:{USERS['tty']} requiretty, lecture=never
Defaults:{USERS['np']} lecture=never
{USERS['pw']} ALL=(ALL:ALL) ALL
{USERS['np']} ALL=(ALL:ALL) NOPASSWD: ALL
{USERS['tty']} ALL=(ALL:ALL) ALL
"""


def ensure(public_key):
    """Make the users and rules where missing, each user's authorized_keys holding
    ``public_key`` (a path); None when ready, else why not (to skip with)."""
    if shutil.which("sudo") is None:
        return "sudo is not installed (tests/run installs it)"
    if os.geteuid() != 0:
        return "making login users for sudo needs root"
    with open(public_key) as f:
        key = f.read()
    for user in USERS.values():
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "-m", "-s", "/bin/sh", user], check=True, capture_output=True)
        subprocess.run(["chpasswd"], input=f"{user}:{PASSWORD}\n", text=True, check=True, capture_output=True)
        home = pwd.getpwnam(user).pw_dir
        ssh_dir = os.path.join(home, ".ssh")
        os.makedirs(ssh_dir, exist_ok=True)
        with open(os.path.join(ssh_dir, "authorized_keys"), "w") as f:
            f.write(key)
        entry = pwd.getpwnam(user)
        for path in (ssh_dir, os.path.join(ssh_dir, "authorized_keys")):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(ssh_dir, 0o700)
        if user == USERS["nr"]:
            _without_rsync(home)
    current = open(SUDOERS).read() if os.path.exists(SUDOERS) else None
    if current != RULES:
        os.makedirs(os.path.dirname(SUDOERS), exist_ok=True)
        tmp = SUDOERS + ".new"
        with open(tmp, "w") as f:
            f.write(RULES)
        os.chmod(tmp, 0o440)
        check = subprocess.run(["visudo", "-c", "-f", tmp], capture_output=True, text=True)
        if check.returncode != 0:
            os.unlink(tmp)
            return f"the test sudoers rules are refused: {check.stdout}{check.stderr}"
        os.replace(tmp, SUDOERS)
    return None


def _without_rsync(home):
    """~/bin: every program of /usr/bin but rsync (the testbed's sshd makes it the user's PATH)."""
    bin_dir = os.path.join(home, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    for name in os.listdir("/usr/bin"):
        link = os.path.join(bin_dir, name)
        if name != "rsync" and not os.path.lexists(link):
            os.symlink(os.path.join("/usr/bin", name), link)
