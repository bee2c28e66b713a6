"""The documentation stays true: every link resolves, every command it shows parses,
and the commands whose inputs ship with the repository run as written.

Covers README.md, docs/*.md, weights/README.md and the examples in every command's
``--help``. Each ``gan-anim`` command line is parsed by the real click command (unknown
options, bad choices and missing required options fail); those whose input files are in
the repository (examples/, weights/) are also run, from a scratch folder (slow); each
``make TARGET`` must be a Makefile target, and each benchmarks/ or tools/ script named
must exist.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "weights" / "README.md"]
README_MAX_LINES = 250

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HTML_SRC = re.compile(r"""<(?:img|a)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""")
FENCE = re.compile(r"^```(\w*)\s*$")
SHELL_LANGS = {"", "sh", "bash", "shell", "console"}
INLINE_CODE = re.compile(r"`([^`\n]+)`")
INLINE_MAKE = re.compile(r"(?:^|&& )make ([a-z][\w-]*)")
SCRIPT = re.compile(r"(?<![\w/.-])((?:benchmarks|tools)/[\w.-]+\.(?:py|sh))\b")
OPERATORS = {"&&", "||", ";", "|", "&"}


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _links():
    for doc in DOCS:
        text = doc.read_text()
        for target in [*LINK.findall(text), *HTML_SRC.findall(text)]:
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue                      # web address, mail, or an anchor on the page
            yield pytest.param(doc, target.split("#")[0], id=f"{_rel(doc)}->{target}")


def _shell_lines(doc: Path):
    """(line number, command) of each shell code block line, continuations joined."""
    lang, pending, start = None, "", 0
    for n, line in enumerate(doc.read_text().splitlines(), 1):
        fence = FENCE.match(line.strip())
        if fence:
            lang = fence.group(1) if lang is None else None
            continue
        if lang is None or lang not in SHELL_LANGS:
            continue
        if not pending:
            start = n
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, pending + line
        pending = ""


def _redirection(tok: str) -> bool:
    return set(tok) <= set("<>&") and ("<" in tok or ">" in tok)


def _segments(command: str):
    """Token lists of the simple commands on one line: comments, operators and
    redirections removed."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.commenters = "#"
    lexer.whitespace_split = True
    tokens, segment, skip = list(lexer), [], False
    for i, tok in enumerate(tokens):
        if skip:
            skip = False
        elif tok in OPERATORS:
            if segment:
                yield segment
            segment = []
        elif _redirection(tok):
            skip = True                       # and its target
        elif tok.isdigit() and i + 1 < len(tokens) and _redirection(tokens[i + 1]):
            continue                          # the 2 of 2>&1
        else:
            segment.append(tok)
    if segment:
        yield segment


def _gan_anim_args(segment: list[str]):
    """The arguments after ``gan-anim`` or ``python -m gan_anim``, or None."""
    for i, tok in enumerate(segment):
        if tok == "gan-anim" or tok.endswith("/gan-anim"):
            return segment[i + 1:]
        if tok == "-m" and i + 1 < len(segment) and segment[i + 1] == "gan_anim":
            return segment[i + 2:]
    return None


def _make_targets(segment: list[str]):
    if segment and segment[0] == "make":
        return [t for t in segment[1:] if not t.startswith("-") and "=" not in t]
    return []


def _commands():
    for doc in DOCS:
        for n, line in _shell_lines(doc):
            for segment in _segments(line):
                yield doc, n, segment


def _help_examples():
    """(command name, args) of every ``gan-anim ...`` line in the commands' help texts."""
    from gan_anim.cli import main

    for name, command in [("gan-anim", main), *sorted(main.commands.items())]:
        text = re.sub(r"\\\n\s*", " ", command.help or "")   # continued lines joined
        for line in text.splitlines():
            if line.strip().startswith("gan-anim "):
                for segment in _segments(line.strip()):
                    if (args := _gan_anim_args(segment)) is not None:
                        yield name, args


CLI_LINES = [pytest.param(args, id=f"{_rel(doc)}:{n}")
             for doc, n, seg in _commands() if (args := _gan_anim_args(seg)) is not None]
HELP_LINES = [pytest.param(args, id=f"{name} --help: {shlex.join(args)[:60]}")
              for name, args in _help_examples()]
OUTPUT_OPTIONS = {"-o", "--output", "--out"}
NEEDS_DATA = {"prepare", "train", "export"}   # training data or a run: not in the repository
SERVES = {"studio"}   # runs until Ctrl-C (tests/test_studio.py starts and stops it)


def _runs_as_written(args: list[str]) -> bool:
    """True for a command whose every named input file ships with the repository."""
    if not args or args[0] in NEEDS_DATA | SERVES or "--help" in args or "-h" in args:
        return False
    inputs = [a for prev, a in zip(["", *args], args)
              if prev not in OUTPUT_OPTIONS and not a.startswith("-")
              and ("/" in a or Path(a).suffix in {".jpg", ".png", ".mp4", ".csv", ".json", ".pt"})]
    return all((ROOT / a).exists() for a in inputs)


RUNNABLE = list({tuple(p.values[0]): p for p in CLI_LINES + HELP_LINES
                 if _runs_as_written(p.values[0])}.values())   # each distinct line once


def _inline_make():
    for doc in DOCS:
        for span in INLINE_CODE.findall(doc.read_text()):
            yield from ((doc, t) for t in INLINE_MAKE.findall(span))


MAKE_TARGETS = sorted({(_rel(doc), t) for doc, _, seg in _commands() for t in _make_targets(seg)}
                      | {(_rel(doc), t) for doc, t in _inline_make()})
SCRIPTS = sorted({(_rel(doc), m) for doc in DOCS for m in SCRIPT.findall(doc.read_text())})


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; the rest belongs in docs/"


def test_the_commands_were_found():
    # guards the parsers above: a broken fence or lexer would make every check vacuous
    assert len(CLI_LINES) >= 20 and len(MAKE_TARGETS) >= 3 and len(SCRIPTS) >= 5
    assert len(HELP_LINES) >= 15 and len(RUNNABLE) >= 6


@pytest.mark.parametrize("doc,target", list(_links()))
def test_link_resolves(doc, target):
    assert (doc.parent / target).exists(), f"{_rel(doc)} links to missing {target}"


@pytest.mark.parametrize("args", CLI_LINES + HELP_LINES)
def test_command_parses(args):
    """Parse (never run) the line with the real command: stale options fail here."""
    from gan_anim.cli import main
    try:
        if not args or args[0].startswith("-"):
            main.make_context("gan-anim", list(args))
            return
        parent = click.Context(main, info_name="gan-anim", **main.context_settings)
        command = main.get_command(parent, args[0])
        assert command is not None, f"no command gan-anim {args[0]}"
        command.make_context(args[0], list(args[1:]), parent=parent)
    except click.exceptions.Exit as e:  # --help, --version
        assert e.exit_code == 0
    except click.ClickException as e:
        pytest.fail(f"gan-anim {shlex.join(args)}: {e.format_message()}")


@pytest.mark.parametrize("doc,target", MAKE_TARGETS)
def test_make_target_exists(doc, target):
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", makefile, re.M))
    assert target in targets, f"{doc} names `make {target}`, which the Makefile lacks"


@pytest.mark.parametrize("doc,script", SCRIPTS)
def test_script_exists(doc, script):
    assert (ROOT / script).is_file(), f"{doc} names {script}, which does not exist"


@pytest.mark.slow
@pytest.mark.parametrize("args", RUNNABLE)
def test_command_runs_as_written(args, tmp_path):
    """Run the line in a scratch folder that holds the repository's examples/ and weights/,
    as a user in a checkout would: exit 0, and every output it names is written there."""
    import os
    import subprocess
    import sys

    for name in ("examples", "weights"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "gan_anim", *args, *(["-q"] if args[0] == "animate" else [])],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"gan-anim {shlex.join(args)}: {proc.stderr.strip()}"
    outputs = [a for prev, a in zip(["", *args], args) if prev in OUTPUT_OPTIONS]
    for out in outputs:
        assert (tmp_path / out).exists(), f"gan-anim {shlex.join(args)} wrote no {out}"
