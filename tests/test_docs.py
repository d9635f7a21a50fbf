"""The documentation and the CLI agree (in the spirit of sqlite-utils' test_docs.py):
every ``mxflip …`` command and ``--option`` the READMEs show exists in the click tree, and
every command, nested ones too, has help text and a working ``--help``."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mxflip.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted(
    [ROOT / "README.md", *ROOT.glob("providers/*/README.md"), *ROOT.glob("examples/*/README.md")]
)


def commands(
    group: click.Group = cli, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], click.Command]:
    """Every command of the tree by its path (groups included), the root as ``()``."""
    found: dict[tuple[str, ...], click.Command] = {path: group}
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            found.update(commands(command, (*path, name)))
        else:
            found[(*path, name)] = command
    return found


TREE = commands()


def option_names(command: click.Command) -> set[str]:
    names = {"--help"}
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def code_fragments(text: str) -> list[str]:
    """Inline code spans, and the lines of fenced or indented code blocks."""
    fragments: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("    "):
            fragments.append(line.split("#", 1)[0] if " #" in line else line)
            continue
        fragments.extend(re.findall(r"`([^`]+)`", line))
    return fragments


#: Code that runs other programs (pip, BIND's grant, knotc, …): their words and options
#: are not mxflip's.
OTHER_PROGRAMS = re.compile(
    r"\b(pip|dig|swaks|named|openssl|rndc|knotc|grant|aws|curl|git|update-policy)\b"
)


def invocations(text: str) -> list[str]:
    """Each ``mxflip …`` command line shown in code, up to a shell separator."""
    found = []
    for fragment in code_fragments(text):
        if OTHER_PROGRAMS.search(fragment):
            continue
        for match in re.finditer(r"(?:^|[\s(*$])mxflip((?:\s+[^\s;&>]+)*)", fragment):
            found.append("mxflip" + match.group(1))
    return found


def resolve(words: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """The longest command path the words name (alternatives ``a|b`` take the first),
    and the option-like words found anywhere after ``mxflip``."""
    path: tuple[str, ...] = ()
    options = [w.split("=", 1)[0] for w in words if re.fullmatch(r"--[a-z][a-z0-9-]*(=.*)?", w)]
    takes_value = False
    for word in words:
        if takes_value:
            takes_value = False
            continue
        if word.startswith("-"):
            param = next(
                (p for p in TREE[path].params if isinstance(p, click.Option) and word in p.opts),
                None,
            )
            # A flag or a counted option (-v, -vv) takes no value.
            takes_value = (
                param is not None and not param.is_flag and not param.count and "=" not in word
            )
            continue
        first = word.replace("\\|", "|").split("|")[0]
        if (*path, first) in TREE:
            path = (*path, first)
        elif isinstance(TREE[path], click.Group) and path == ():
            raise AssertionError(f"'{first}' is not an mxflip command")
        else:
            break
    return path, options


def documented() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for line in invocations(doc.read_text()):
            out.append((str(doc.relative_to(ROOT)), line))
    return out


def test_the_docs_show_commands() -> None:
    """The extraction works: the README's command table is found."""
    shown = {resolve(line.split()[1:])[0] for _, line in documented()}
    assert {("status",), ("failover",), ("canary", "send"), ("providers",)} <= shown


def test_every_command_is_documented_in_the_readme() -> None:
    shown = {resolve(line.split()[1:])[0] for doc, line in documented() if doc == "README.md"}
    leaves = {p for p, c in TREE.items() if not isinstance(c, click.Group)}
    # `canary send|check|run` documents all three.
    shown |= {("canary", "check"), ("canary", "run")} if ("canary", "send") in shown else set()
    assert leaves - shown == set()


@pytest.mark.parametrize(("doc", "line"), documented(), ids=lambda v: str(v)[:60])
def test_documented_command_and_options_exist(doc: str, line: str) -> None:
    path, options = resolve(line.split()[1:])
    allowed = set().union(*(option_names(TREE[path[:i]]) for i in range(len(path) + 1)))
    unknown = [o for o in options if o not in allowed]
    assert not unknown, f"{doc}: `{line}`: {' '.join(path)} has no option {unknown}"
    # Alternatives in the docs (`canary send|check|run`) must each exist too.
    for word in line.replace("\\|", "|").split()[1:]:
        alternatives = word.split("|")
        if len(alternatives) > 1 and path and alternatives[0] == path[-1]:
            for alternative in alternatives:
                assert (*path[:-1], alternative) in TREE, f"{doc}: no command {alternative}"


def test_every_documented_option_exists_somewhere() -> None:
    """Options named in prose (``--junit FILE``) belong to some command."""
    everywhere = set().union(*(option_names(c) for c in TREE.values()))
    for doc in DOCS:
        # A line about another program (knotc's `--blocking`, pip, …) is not about mxflip.
        text = "\n".join(
            line for line in doc.read_text().splitlines() if not OTHER_PROGRAMS.search(line)
        )
        mentioned = {
            m
            for fragment in code_fragments(text)
            for m in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", fragment)
        }
        unknown = sorted(mentioned - everywhere)
        assert not unknown, f"{doc.relative_to(ROOT)} mentions unknown options {unknown}"


@pytest.mark.parametrize("path", sorted(TREE), ids=lambda p: " ".join(p) or "mxflip")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    command = TREE[path]
    assert command.help and len(command.help.split()) >= 5, f"{path} has no help text"
    if path:
        assert command.get_short_help_str(), f"{path} has no short help"
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"mxflip {' '.join(path)} {param.opts[0]} has no help"
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Usage: {' '.join(('cli', *path))}")
    assert command.help.split()[0] in result.stdout
