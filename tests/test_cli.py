"""Argument parsing and bad input: one clear line, exit status 2, nothing run."""
import re

import pytest

import clstr

from clstr import cli, ssh


def run_cli(capsys, argv, monkeypatch=None):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def no_user_profiles(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CLSTR_PROFILES", raising=False)
    monkeypatch.delenv("CLSTR_SSH", raising=False)
    monkeypatch.chdir(tmp_path)
    # any attempt to run would need ssh: make sure none happens
    monkeypatch.setattr(cli.api, "Supervisor", None)


@pytest.mark.parametrize("argv,message", [
    (["-j", "true"], "clstr: no nodes given (use --node, --node-file, --profile or -g)"),
    (["missing.txt", "-n", "a"], "clstr: missing.txt: job file not found"),
    (["-n", "a", "--job-file", "missing.txt"], "clstr: missing.txt: job file not found"),
    (["--node-file", "nope.txt", "-j", "x"], "clstr: nope.txt: node file not found"),
    (["-n", "a", "-m", "-1", "-j", "x"], "clstr: -m must be a whole number from 0 to "
     "1000000, got -1"),
    (["-n", "a", "-m", "x", "-j", "x"], "clstr: argument -m/--max-nodes/-f/--fanout: expected a whole number, got 'x'"
     " (see clstr --help)"),
    (["-n", "a", "--connect-timeout", "1e10", "-j", "x"], "clstr: --connect-timeout must be more "
     "than 0 and at most 31622400 seconds (a year), got 1e+10"),
    (["-n", "a", "--timeout", "-5", "-j", "x"], "clstr: --timeout must be more than 0 and at most "
     "31622400 seconds (a year), got -5"),
    (["-n", "a", "--timeout", "nan", "-j", "x"], "clstr: argument --timeout: expected a duration "
     "(30, 90s, 5m, 2h, 1d) or N%, got 'nan' (see clstr --help)"),
    (["-n", "a", "--timeout", "400d", "-j", "x"], "clstr: --timeout must be more than 0 and at most "
     "31622400 seconds (a year), got 3.456e+07"),
    # /proc takes no new file: found before the run, not by the first write of the state
    (["-n", "a", "--state", "/proc/x", "-j", "x"], "clstr: /proc/x: --state file: cannot make a file in /proc "
     "(No such file or directory)"),
    (["-n", "a", "--reprobe", "-1", "-j", "x"], "clstr: --reprobe must be at least 0 and at most "
     "31622400 seconds (a year), got -1"),
    (["-n", "a", "--max-attempts", "0", "-j", "x"], "clstr: --max-attempts must be a whole number "
     "from 1 to 1000000, got 0"),
    (["-n", "a", "--ssh", '"x', "-j", "x"], "clstr: --ssh '\"x': No closing quotation (it is split as a shell would)"),
    (["-n", "a", "-A", "/nonexistent-dir/active", "-j", "x"], "clstr: /nonexistent-dir/active: --active-nodes file: "
     "no such directory /nonexistent-dir"),
    (["-n", "a", "-A", ".", "-j", "x"], "clstr: .: --active-nodes file is a directory"),
    (["-n", "a", "--timeout", "soon", "-j", "x"], "clstr: argument --timeout: expected a duration "
     "(30, 90s, 5m, 2h, 1d) or N%, got 'soon' (see clstr --help)"),
    (["-n", "a", "--idle-timeout", "x", "-j", "x"], "clstr: argument --idle-timeout: expected a duration "
     "(30, 90s, 5m, 2h, 1d), got 'x' (see clstr --help)"),
    (["-n", "a", "--", "echo {}", ":::"], "clstr: ::: is followed by no values: nothing would run "
     "(give the values after it)"),
    (["-n", "a", "--job-failures", "maybe", "-j", "x"], "clstr: argument --job-failures: invalid choice: 'maybe' "
     "(choose from 'node', 'job') (see clstr --help)"),
    (["-n", "a", "-E", "uptime", "-j", "x"], "clstr: --on-each-node runs one command on every node: "
     "give no jobs with it"),
    (["-n", "a", "--resume", "-j", "x"], "clstr: --resume needs --joblog FILE"),
    (["-n", "node[3-1]", "-j", "x"], "clstr: empty range '3-1' in 'node[3-1]' (end before start)"),
    (["-n", "a", "-x", "a", "-j", "x"], "clstr: no nodes to run on after exclusions"),
    (["-p", "lab", "-j", "x"], "clstr: unknown profile 'lab' (known: none; searched: no profile file found); put "
                               "profiles in ~/.config/clstr/profiles.yaml (conf/profiles.yaml documents every key)"),
    (["--bogus"], "clstr: unrecognized arguments: --bogus (see clstr --help)"),
    (["-n", "a", "--ssh", "no-such-ssh -F x", "-j", "x"], "clstr: ssh command not found: 'no-such-ssh -F x' "
     "(see --ssh)"),
    (["-n", "a", "--ssh", "ssh -qn", "-E", "x"], "clstr: --ssh 'ssh -qn': ssh -n closes the session's stdin, which "
     "clstr's side on the node needs (clstr gives -n itself where a command needs none): leave it out"),
    (["-n", "a", "--ssh", "ssh -l nobody -N", "-j", "x"], "clstr: --ssh 'ssh -l nobody -N': ssh -N runs no command: "
     "leave it out"),
    (["-n", "a", "-O", "Port=22", "-O", "sessiontype none", "-j", "x"], "clstr: -O 'sessiontype none': ssh then "
     "runs no command: leave it out"),
    (["-n", "a", "-O", "RemoteCommand=top", "-j", "x"], "clstr: -O 'RemoteCommand=top': ssh then runs that "
     "command instead of clstr's: leave it out"),
])
def test_bad_input(capsys, argv, message):
    code, out, err = run_cli(capsys, argv)
    assert (code, out, err) == (2, "", message + "\n")


def test_bad_line_in_node_file(capsys, tmp_path):
    (tmp_path / "nodes.txt").write_text("good1\n# fine\nbad[1-\n")
    code, out, err = run_cli(capsys, ["-N", "nodes.txt", "-j", "x"])
    assert (code, err) == (2, "clstr: nodes.txt:3: unbalanced brackets in 'bad[1-'\n")


def test_empty_node_file(capsys, tmp_path):
    (tmp_path / "nodes.txt").write_text("# nothing here\n\n")
    assert run_cli(capsys, ["-N", "nodes.txt", "-j", "x"])[2] == "clstr: nodes.txt: node file lists no nodes\n"


def test_bad_profile_yaml_names_file_and_line(capsys, tmp_path):
    (tmp_path / "p.yaml").write_text("lab:\n  nodes: [a, b\n")
    code, out, err = run_cli(capsys, ["--profiles", "p.yaml", "-p", "lab", "-j", "x"])
    assert code == 2
    assert err.startswith("clstr: p.yaml:3: malformed YAML")
    assert err.count("\n") == 1


def test_unreadable_job_file(capsys, tmp_path):
    (tmp_path / "dir").mkdir()
    assert run_cli(capsys, ["dir", "-n", "a"])[2] == "clstr: dir: job file is a directory\n"


@pytest.mark.parametrize("data,jobs", [
    (b"\xef\xbb\xbfecho 1\necho 2\n", ["echo 1", "echo 2"]),  # a BOM is not part of job 1
    (b"echo a\x0cb\necho c\x0bd\xe2\x80\xa8e\r\n", ["echo a\x0cb", "echo c\x0bd\u2028e"]),  # only \n ends a job
    (b"echo \xff\n", ["echo \udcff"]),  # bytes that are not UTF-8 are kept as they are
    (b"echo last", ["echo last"]),
])
def test_job_file_lines(tmp_path, data, jobs):
    (tmp_path / "jobs").write_bytes(data)
    assert [line for _, line in cli.read_lines(str(tmp_path / "jobs"), "job file")] == jobs


def test_nul_byte_in_job_file_names_its_line(capsys, tmp_path):
    (tmp_path / "jobs").write_bytes(b"echo 1\necho 2\nec\0ho\n")
    assert run_cli(capsys, ["jobs", "-n", "a"])[2] == "clstr: jobs:3: job file has a NUL byte (not a text file?)\n"


@pytest.mark.parametrize("call,error", [
    (lambda: clstr.run("echo hi", ["a"]), "jobs must be a list of shell commands, not a single str"),
    (lambda: clstr.run(["echo hi"], "a"), "nodes must be a list of host patterns, not a single str"),
    (lambda: clstr.run([1], ["a"]), "jobs[0] must be a string, not int"),
    (lambda: clstr.run(["x"], ["a"], timeout="5"), "timeout (--timeout) must be a number of seconds, not str"),
    (lambda: clstr.run(["x"], ["a"], verbose=1), "verbose must be True or False, not int"),
])
def test_library_type_errors(call, error):
    with pytest.raises(TypeError) as e:
        call()
    assert str(e.value).startswith(error)


@pytest.mark.parametrize("kw,error", [
    (dict(max_attempts=0), "max_attempts (--max-attempts) must be a whole number from 1 to 1000000, got 0"),
    (dict(timeout=-5), "timeout (--timeout) must be more than 0 and at most 31622400 seconds (a year), got -5"),
    (dict(max_nodes=-1), "max_nodes (-m/--max-nodes) must be a whole number from 0 to 1000000, got -1"),
    (dict(job_failures="sometimes"), "job_failures (--job-failures) must be one of node, job, not 'sometimes'"),
])
def test_library_bad_values(kw, error):
    with pytest.raises(clstr.InputError) as e:
        clstr.run(["x"], ["a"], **kw)
    assert str(e.value) == error


def test_library_nul_byte_and_zero_limits():
    with pytest.raises(clstr.InputError):
        clstr.run(["a\0b"], ["a"])
    run = clstr.api.Run(["x"], ["a"], max_nodes=0, max_node_uses=0)
    assert (run.policy.max_running, run.policy.max_node_uses) == (None, None)  # 0: no limit


def test_no_job_given_is_refused_and_an_empty_job_list_is_success(capsys, tmp_path, monkeypatch):
    # nodes and no job at all: a mistake, said as one for jobs and no nodes is (issue 23)
    assert run_cli(capsys, ["-n", "a"]) == (2, "", "clstr: no jobs given (give a job file, '-' for stdin, -j CMD, "
                                                   "-E CMD or COMMAND ::: ARGS)\n")
    # a job list that is empty (a pipeline that found nothing to do) is a run of no jobs
    monkeypatch.chdir(tmp_path)
    (tmp_path / "none.txt").write_text("")
    assert run_cli(capsys, ["none.txt", "-n", "a"]) == (0, "", "")


def test_list_profiles(capsys, tmp_path):
    (tmp_path / "p.yaml").write_text("lab: {nodes: ['l[1-3]'], slots: 2}\nsolo: [x]\n")
    code, out, err = run_cli(capsys, ["--profiles", "p.yaml", "--list-profiles"])
    assert code == 0
    assert out == "lab\t3 nodes\t6 slots\tp.yaml\nsolo\t1 node\t1 slot\tp.yaml\n"


def test_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    for text in ("exit status:", "130 interrupted", "--on-each-node", "--job-failures", "profiles:"):
        assert text in out
    assert len(out.splitlines()) <= 40 and max(map(len, out.splitlines())) <= 80  # a first screen
    with pytest.raises(SystemExit):
        cli.main(["--help-all"])
    every = capsys.readouterr().out
    assert "exit status:" in every and "--gateway-fallback" in every
    parser = cli.build_parser()
    flags = {f for a in parser._actions for f in a.option_strings}
    named = set(re.findall(r"(?<![\w-])(--?[a-zA-Z][-a-zA-Z]*)", out[:out.index("examples:")]))
    assert named <= flags, named - flags  # every option the short help names is one


def test_ssh_argv_user_options_first():
    cfg = ssh.SshConfig.from_strings("ssh -F cfg", ["ConnectTimeout=1"], connect_timeout=7)
    argv = ssh.job_argv(ssh.base_argv(cfg), "n1", "echo hi", cleanup=False)
    kept = list(ssh.kept_stdin(cfg.command))  # StdinNull=no where this ssh knows it: it must win
    assert argv[:5 + len(kept)] == ["ssh", "-F", "cfg", *kept, "-o", "ConnectTimeout=1"]
    assert "BatchMode=yes" in argv and "ConnectTimeout=7" in argv
    assert argv[-6:] == ["-o", "ControlPath=none", "-n", "--", "n1", "echo hi"]


def test_ssh_argv_multiplexed_with_cleanup():
    line = ssh.remote_command("echo 'hi'")
    argv = ssh.job_argv(ssh.base_argv(ssh.SshConfig()), "n1", line, "/tmp/c/0-0")
    assert argv[-8:-1] == ["-o", "ControlMaster=no", "-o", "ControlPath=/tmp/c/0-0", "-T", "--", "n1"]
    assert "-n" not in argv  # stdin is the pipe that tells the node when ssh ended; -T: never a terminal
    assert argv[-1] == line
    master = ssh.master_argv(ssh.base_argv(ssh.SshConfig()), "n1", "/tmp/c/0-0")
    assert master[-11:] == ["-o", "ControlMaster=yes", "-o", "ControlPath=/tmp/c/0-0", "-o", "ControlPersist=60",
                            "-n", "-N", "-f", "--", "n1"]



def test_ssh_config_argv_and_jump_host():
    argv = ssh.config_argv(ssh.base_argv(ssh.SshConfig.from_strings("ssh -F cfg")), "u@h:2222")
    assert argv[:3] == ["ssh", "-F", "cfg"] and argv[-5:] == ["-G", "-p", "2222", "--", "u@h"]


@pytest.mark.parametrize("config,jump", [
    ("user root\nhostname 10.0.0.7\nproxyjump bastion\nport 22\n", "bastion"),
    ("proxyjump u@b1:2222,b2\n", "u@b1:2222,b2"),
    ("user root\nhostname 10.0.0.7\n", None),
    ("proxyjump none\n", None),
    ("proxycommand ssh -W %h:%p b\n", None),  # a ProxyCommand is the user's own program: not followed
    ("", None),
])
def test_jump_host_from_ssh_G(config, jump):
    assert ssh.jump_host(config) == jump

@pytest.mark.parametrize("stderr,reason,never_ran", [
    ("ssh: connect to host 127.0.0.9 port 22: Connection refused\n", "refused", True),
    ("Connection timed out during banner exchange\n", "timed out", True),
    ("u@h: Permission denied (publickey).\n", "authentication", True),
    ("Host key verification failed.\n", "host key", True),
    ("ssh: Could not resolve hostname nope: Name or service not known\n", "unknown host", True),
    ("Timeout, server 10.0.0.1 not responding.\n", "connection lost", False),
    ("Connection to 127.0.0.2 closed by remote host.\n", "connection lost", False),
    ("kex_exchange_identification: Connection closed by remote host\n", "connection closed", True),
    ("Cannot execute command-line and remote command.\n",
     "RemoteCommand in ssh_config", True),
    ("some output of the job\n", None, False),
    # what jobs print (cat, curl, git) is not ssh's own message
    ("cat: /root/x: Permission denied\n", None, False),
    ("curl: (7) Failed to connect to h port 80: Connection refused\n", None, False),
    ("fatal: Could not read from remote repository. Host key verification failed\n", None, False),
])
def test_classify(stderr, reason, never_ran):
    assert ssh.classify(stderr.encode()) == (reason, never_ran)


@pytest.mark.parametrize("stderr,words", [  # ssh's own words for a node's failure, as pdsh shows them
    ("ssh: connect to host 127.0.0.9 port 22: Connection refused\n", "Connection refused"),
    ("ssh: connect to host 10.1.2.3 port 2222: No route to host\n", "No route to host"),
    ("u@h: Permission denied (publickey).\n", "Permission denied (publickey)"),
    ("web1.example: Permission denied (publickey,password).\n", "Permission denied (publickey,password)"),
    ("Warning: Permanently added 'h' (ED25519) to the list of known hosts.\n"
     "Host key verification failed.\n", "Host key verification failed"),
    ("ssh: Could not resolve hostname nope: Name or service not known\n",
     "Could not resolve hostname nope: Name or service not known"),
    ("Connection timed out during banner exchange\n", "Connection timed out during banner exchange"),
    ("Connection to 127.0.0.2 closed by remote host.\n", "Connection to 127.0.0.2 closed by remote host"),
    ("some output of the job\n", None),
    ("curl: (7) Failed to connect to h port 80: Connection refused\n", None),  # a job's, not ssh's
])
def test_ssh_said(stderr, words):
    assert ssh.said(stderr.encode()) == words


def test_remote_command_forms():
    assert ssh.remote_command("echo 'a'", cleanup=False) == "echo 'a'"
    line = ssh.remote_command("echo 'a'")
    # known login shells start the watcher and eval the job; any other execs the sh wrapper
    assert line.startswith('test "$SHELL" = /bin/bash -o "$SHELL" = /usr/bin/bash -o ')
    assert " || exec sh -c 'exec 3<&0 </dev/null 4>&2 2>/dev/null; trap : TERM HUP INT; j=\"$1\"; " in line
    assert line.count(ssh.quote("echo 'a'")) == 1  # as the sh wrapper's argument; quoted again for eval
    assert line.count("0000000000000000:s") == 2  # the start mark, on either route


@pytest.mark.parametrize("text,quoted", [("a", "a"), ("", "''"), ("it's", r"'it'\''s'"), ("a\\b", r"'a'\\'b'"),
                                         ("$x y", "'$x y'")])
def test_quote(text, quoted):
    assert ssh.quote(text) == quoted


# ---- every form of the original clstr 0.1.0's command line, through --dry-run -----------
@pytest.fixture
def files(tmp_path):
    (tmp_path / "a.txt").write_text("n1\nn2\n")
    (tmp_path / "b.txt").write_text("n3\n")
    (tmp_path / "jobs1.txt").write_text("echo one\necho two\n")
    (tmp_path / "jobs2.txt").write_text("echo three\n")
    (tmp_path / "p.yaml").write_text("lab: ['lab[1-3]']\n")
    (tmp_path / "empty.txt").write_text("")


@pytest.mark.parametrize("argv,nodes,jobs", [
    (["--node", "A", "B", "C", "-j", "hostname"], "nodes: 3 (A,B,C), slots: 3", "jobs: 1"),
    (["-n", "h1", "h2", "h3", "--", "empty.txt"], "nodes: 3 (h[1-3]), slots: 3", "jobs: 0"),
    (["-n", "h1", "h2", "-E", "uname"], "nodes: 2 (h[1-2]), slots: 2", "jobs: 2"),
    (["--node-file", "a.txt", "b.txt", "-j", "hostname"], "nodes: 3 (n[1-3]), slots: 3", "jobs: 1"),
    (["-N", "a.txt", "b.txt", "-j", "hostname"], "nodes: 3 (n[1-3]), slots: 3", "jobs: 1"),
    (["--job-file", "jobs1.txt", "jobs2.txt", "-n", "x"], "nodes: 1 (x), slots: 1", "jobs: 3"),
    (["-J", "jobs1.txt", "jobs2.txt", "-N", "a.txt"], "nodes: 2 (n[1-2]), slots: 2", "jobs: 3"),
    (["jobs1.txt", "-N", "a.txt"], "nodes: 2 (n[1-2]), slots: 2", "jobs: 2"),
    (["-N", "a.txt", "--", "jobs1.txt", "jobs2.txt"], "nodes: 2 (n[1-2]), slots: 2", "jobs: 3"),
    (["--profiles", "p.yaml", "-p", "lab", "jobs1.txt"], "nodes: 3 (lab[1-3]), slots: 3", "jobs: 2"),
    (["-n", "x", "x", "-m", "0", "-u", "0", "-vv", "-s", "-o", "-e", "-A", "act", "-j", "true"],
     "nodes: 1 (x), slots: 2", "jobs: 1"),
    (["-n", "x", "-j", "a", "-j", "b"], "nodes: 1 (x), slots: 1", "jobs: 2"),
    (["-n", "n[1-9]", "-x", "/[3-7]/", "-j", "a"], "nodes: 4 (n[1-2,8-9]), slots: 4", "jobs: 1"),
    (["-n", "^a.txt,-n2", "@lab", "--profiles", "p.yaml", "-j", "a"], "nodes: 4 (lab[1-3],n1), slots: 4",
     "jobs: 1"),
    (["-n", "n[1-4]", "-x", "^b.txt", "-j", "a"], "nodes: 3 (n[1-2,4]), slots: 3", "jobs: 1"),
])
def test_original_command_line_forms(capsys, files, argv, nodes, jobs):
    code, out, err = run_cli(capsys, ["--dry-run"] + argv)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == nodes and lines[1].startswith(jobs)


@pytest.mark.parametrize("argv,message", [
    (["-N", "a.txt", "jobs1.txt"], "clstr: jobs1.txt:1: 'echo one' cannot be a node (it has a space; separate hosts "
     "with commas); is jobs1.txt a job file? Give job files before -N/-n or after --"),
    (["-n", "h1", "h2", "jobs1.txt"], "clstr: 'jobs1.txt' was given to -n as a node and no job was given: to run it "
     "as a job file, give it before -n or after --"),
    (["-n", "h1", "echo hi", "-j", "x"], "clstr: 'echo hi' cannot be a node (it has a space; separate hosts with "
     "commas)"),
    (["-n", "@lab", "-j", "x"], "clstr: unknown profile 'lab' (known: none; searched: no profile file found); put "
                                "profiles in ~/.config/clstr/profiles.yaml (conf/profiles.yaml documents every key)"),
])
def test_mixups_are_refused(capsys, files, argv, message):
    assert run_cli(capsys, argv) == (2, "", message + "\n")


@pytest.mark.parametrize("node,port,host", [
    ("h", [], "h"), ("u@h", [], "u@h"), ("h:2222", ["-p", "2222"], "h"), ("u@h:22", ["-p", "22"], "u@h"),
    ("[::1]", [], "::1"), ("[::1]:2222", ["-p", "2222"], "::1"),
    ("u@[fe80::1%eth0]:22", ["-p", "22"], "u@fe80::1%eth0"),
    ("::1", [], "::1"), ("alias", [], "alias"),
])
def test_ssh_destination(node, port, host):
    assert ssh.destination(node) == (port, host)
    argv = ssh.job_argv(["ssh"], node, "true", cleanup=False)
    assert argv[-2 - len(port) - 1:] == port + ["--", host, "true"]


PROFILE_FILES = """\
lab:
  nodes: [a]
  workdir: ...
  env: [CLSTR_T_A]
  basefile: [base.txt]
other:
  nodes: [b]
  workdir: /scratch
"""


def test_a_profiles_workdir_env_and_basefile_apply_and_the_command_line_wins(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(PROFILE_FILES)
    monkeypatch.setenv("CLSTR_T_A", "1")
    monkeypatch.setenv("CLSTR_T_B", "2")
    args = cli.build_parser().parse_args(["--profiles", "p.yaml", "-p", "lab", "--env", "CLSTR_T_B",
                                          "--bf", "more.txt", "-j", "x"])
    given = cli.gather_nodes(args)
    assert (given.options.workdir, given.options.env, given.options.basefile) == ("...", ["CLSTR_T_B", "CLSTR_T_A"],
                                                          ["more.txt", "base.txt"])
    args = cli.build_parser().parse_args(["--profiles", "p.yaml", "-p", "lab", "-p", "other", "--wd", "w",
                                          "-j", "x"])
    assert cli.gather_nodes(args).options.workdir == "w"


@pytest.mark.parametrize("argv,message", [
    (["-p", "lab", "-p", "other"], "clstr: profiles 'lab' and 'other' set different work directories "
                                   "('...', '/scratch'): choose one with --workdir\n"),
    (["-p", "lab"], "clstr: profile 'lab': env CLSTR_T_A: no such variable is set here\n"),
])
def test_profiles_that_cannot_agree_or_name_an_unset_variable_are_refused(capsys, monkeypatch, tmp_path, argv,
                                                                           message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLSTR_T_A", raising=False)
    if "other" in argv:
        monkeypatch.setenv("CLSTR_T_A", "1")
    (tmp_path / "p.yaml").write_text(PROFILE_FILES)
    code, out, err = run_cli(capsys, ["--profiles", "p.yaml", *argv, "-j", "true"])
    assert (code, out, err) == (2, "", message)


@pytest.mark.parametrize("says,kept", [
    ("OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15 3 Sep 2024", ["-o", "StdinNull=no"]),
    ("OpenSSH_8.7p1, OpenSSL 1.1.1k  FIPS 25 Mar 2021", ["-o", "StdinNull=no"]),
    ("OpenSSH_8.4p1 Debian-5+deb11u3, OpenSSL 1.1.1w  11 Sep 2023", []),  # no StdinNull yet
    ("OpenSSH_7.4p1, OpenSSL 1.0.2k-fips  26 Jan 2017", []),
    ("usage: mytool [-x]", []),  # not an OpenSSH: nothing added
])
def test_stdin_kept_open_where_ssh_knows_stdinnull(tmp_path, says, kept):
    fake = tmp_path / "fake-ssh"
    fake.write_text(f"#!/bin/sh\necho '{says}' >&2\n")
    fake.chmod(0o755)
    argv = ssh.base_argv(ssh.SshConfig.from_strings(f"{fake} -F cfg", ["StdinNull=yes"]))
    # before the user's options and config: the first value ssh reads wins
    assert argv[:3 + len(kept)] == [str(fake), "-F", "cfg", *kept]


@pytest.mark.parametrize("command,flag", [
    ("ssh", None), ("ssh -n", "-n"), ("ssh -Tn", "-n"), ("ssh -N", "-N"), ("ssh -s", "-s"),
    ("ssh -l nobody", None), ("ssh -lnobody", None), ("ssh -l -n", None),  # -n is -l's value there
    ("ssh -p22 -o ServerAliveInterval=9 -n", "-n"), ("ssh -i key -F cfg", None),
    ("ssh -vn", "-n"), ("ssh -Nf", "-N"), ("ssh -- -n", None), ("sshpass -p pw ssh -n", "-n"),
    ("ssh -C -4 -A", None), ("ssh -J jump -q", None), ("sshpass -f pw /usr/bin/ssh -nT", "-n"),
    ("sshpass -n ssh", None),  # another program's flag
    ("ssh -o StdinNull=yes", "-o StdinNull=yes"), ("ssh -oStdinNull=no", None),
    ("ssh -o SessionType=none", "-o SessionType=none"),
    ("ssh -oRemoteCommand=top", "-o RemoteCommand=top"), ("ssh -o Port=22 -n", "-n"), ("ssh -o", None),
])
def test_refused_ssh_flags(command, flag):
    found = ssh.refused_flag(tuple(command.split()))
    assert (found[0] if found else None) == flag


@pytest.mark.parametrize("option", ["--timeout", "--idle-timeout", "--reprobe", "--reprobe-for", "--connect-timeout",
                                    "--ssh-delay", "--persist"])
def test_every_duration_option_takes_the_same_forms(option):
    """Issue 36: --timeout 5m was refused while --persist 10m was taken."""
    from clstr import cli
    p = cli.build_parser()
    for text, seconds in (("45", 45.0), ("90s", 90.0), ("5m", 300.0), ("2h", 7200.0), ("1d", 86400.0)):
        value = getattr(p.parse_args(["-n", "a", option, text, "-j", "x"]), option.lstrip("-").replace("-", "_"))
        assert (value[-1] if isinstance(value, list) else value) == seconds
