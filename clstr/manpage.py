"""Man pages (roff) from the argparse parsers that make --help: one source for both.

``python3 -m clstr.manpage DIR`` writes DIR/clstr.1 and DIR/clstr-report.1; the pages shipped in
docs/man/ are its output, and a test keeps them equal to it. No dependency: argparse's own
actions and groups are walked, and the epilog's sections ("examples:", "exit status:", ...)
become the page's.
"""
import argparse
import os
import re
import sys

from . import __version__


def escape(text):
    """``text`` as roff prints it literally: backslashes, hyphens (copied as typed), leading dots."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n"))


def _bold(text):
    return f"\\fB{escape(text)}\\fR"


def _italic(text):
    return f"\\fI{escape(text)}\\fR"


def _expanded_help(parser, action):
    """The action's help as --help prints it (its %(default)s and the like filled in)."""
    formatter = parser._get_formatter()
    try:
        return formatter._expand_help(action)
    except (AttributeError, KeyError, TypeError, ValueError):
        return action.help or ""


def _metavar(parser, action):
    if action.nargs == 0:
        return ""
    formatter = parser._get_formatter()
    try:
        return formatter._format_args(action, formatter._get_default_metavar_for_optional(action))
    except (AttributeError, TypeError, ValueError):
        return action.metavar or action.dest.upper()


def _option(parser, action):
    """The .TP entry of one option: its forms, its argument, its help."""
    meta = _metavar(parser, action)
    forms = ", ".join(_bold(f) + (" " + _italic(meta) if meta else "") for f in action.option_strings)
    if not action.option_strings:
        forms = _italic(action.metavar or action.dest)
    return f".TP\n{forms}\n{escape(' '.join(_expanded_help(parser, action).split()))}\n"


def options(parser):
    """The OPTIONS section: a subsection per argument group, as --help groups them."""
    out = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.help != argparse.SUPPRESS]
        if not actions:
            continue
        title = group.title or ""
        if title in ("optional arguments", "options"):
            title = "general"
        out.append(f".SS {escape(title[0].upper() + title[1:])}\n")
        out += [_option(parser, a) for a in actions]
    return "".join(out)


def epilog_sections(epilog):
    """[(title, lines)] of an epilog written as --help shows it: "title:" at the margin, its text indented."""
    sections = []
    for line in (epilog or "").splitlines():
        m = re.match(r"^(\S.*):$", line)
        if m:
            sections.append((m.group(1), []))
        elif sections:
            sections[-1][1].append(line)
    return sections


def _section(title, lines):
    """An epilog section as roff: examples as they are typed, exit statuses as a list, else prose."""
    lines = [ln for ln in lines if ln.strip()] if title != "examples" else [ln for ln in lines if ln.strip()]
    head = f".SH {escape(title.upper())}\n"
    if title == "examples":
        return head + ".nf\n.RS 2\n" + "".join(escape(ln.strip()) + "\n" for ln in lines) + ".RE\n.fi\n"
    if title == "exit status":
        out, text = [], None
        for ln in lines:
            m = re.match(r"^  (\d+)\s+(.*)$", ln)
            if m:
                out.append([m.group(1), m.group(2).strip()])
            elif ln.startswith("      ") and out:
                out[-1][1] += " " + ln.strip()
            else:
                text = ln.strip() if text is None else text + " " + ln.strip()
                out.append([None, text])
                text = None
        body = ""
        for code, words in out:
            if code is None:
                body += ".PP\n" + escape(words) + "\n"
            else:
                body += f".TP\n.B {code}\n{escape(words)}\n"
        return head + body
    return head + escape(" ".join(ln.strip() for ln in lines)) + "\n"


def render(parser, name, summary, synopsis, description, epilog=None, files=(), see_also=()):
    """The roff text of ``name``'s page (section 1)."""
    out = [f'.TH {escape(name.upper())} 1 "" "{escape(name)} {escape(__version__)}" "User Commands"\n',
           ".SH NAME\n", f"{escape(name)} \\- {escape(summary)}\n", ".SH SYNOPSIS\n"]
    for i, line in enumerate(synopsis):
        out.append((".br\n" if i else "") + f"{_bold(name)} {escape(line)}\n")
    out.append(".SH DESCRIPTION\n")
    for para in description:
        out.append(".PP\n" + escape(" ".join(para.split())) + "\n")
    out.append(".SH OPTIONS\n" + options(parser))
    for title, lines in epilog_sections(epilog):
        out.append(_section(title, lines))
    if files:
        out.append(".SH FILES\n")
        for path, what in files:
            out.append(f".TP\n{_italic(path)}\n{escape(what)}\n")
    if see_also:
        out.append(".SH SEE ALSO\n" + escape(", ".join(see_also)) + "\n")
    return "".join(out)


def clstr_page():
    from . import cli
    return render(
        cli.build_parser(), "clstr", "run shell commands in parallel on many machines over SSH",
        ["[options] [JOB_FILE ...]", "[options] COMMAND ::: ARGS ... [:::: FILE ...]",
         "[options] -E COMMAND"],
        ["clstr runs a list of shell commands (jobs) in parallel on many machines (nodes) over SSH, at most "
         "one job per node slot at a time. Jobs come from job files (one a line, '-' is stdin), -j, -J, -E "
         "(one command on every node), or as GNU parallel makes them from a command and its inputs "
         "(COMMAND ::: A B C). Nodes come from -n, -N or a profile (-p).",
         "Every job ends succeeded, failed (with why) or not run (with why), and the summary on stderr, the "
         "exit status, the job log (--joblog), --json and --state agree. Dead, hung and broken nodes are "
         "retired quickly, probed again later, and their jobs move to other nodes.",
         "ssh is OpenSSH's: your ssh_config, keys, agent and ProxyJump apply. Jobs on a node share one "
         "connection (ControlMaster) and each slot keeps one session its jobs go down.",
         "The reference (nodes and profiles, failures and what clstr promises, on the nodes, output and "
         "logs, speed, the library) is in the docs/ directory of the source, and on the project's page."],
        cli.EPILOG,
        files=[("~/.config/clstr/profiles.yaml", "profiles of the user ($XDG_CONFIG_HOME/clstr/profiles.yaml)"),
               ("/etc/clstr/profiles.yaml", "profiles of the machine")],
        see_also=["clstr-report(1)", "ssh(1)", "ssh_config(5)", "parallel(1)", "pdsh(1)", "clush(1)", "pssh(1)"])


def report_page():
    from . import report
    return render(
        report.build_parser(), "clstr-report", "an HTML page of a clstr run", ["RUN.json > run.html"],
        ["clstr-report reads the summary that clstr --json FILE wrote and writes one self-contained HTML page "
         "(no script, nothing fetched) to stdout: the run's date, duration and command line; its failures "
         "first, each failed or not-run job with its reason and every attempt; a timeline with a row per "
         "node slot, grouped by node, and a bar per attempt (failures never hidden, re-queues coloured by "
         "cause, opening the connection drawn apart); jobs complete over time; a table per node with its "
         "median runtime; the slowest jobs.",
         "A file that is not such a summary is one line on stderr and exit status 2."],
        see_also=["clstr(1)"])


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python3 -m clstr.manpage DIR\n")
        return 2
    for name, text in (("clstr.1", clstr_page()), ("clstr-report.1", report_page())):
        with open(os.path.join(args[0], name), "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
