"""Every command of ``spacelang.cli.COMMANDS``: help, usage errors, option help strings, --version."""
from __future__ import annotations

import argparse

import pytest

from spacelang import __version__, cli

COMMANDS = sorted(cli.COMMANDS)


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.fixture(scope="module")
def parsers():
    return _subparsers()


def _run(argv, capsys) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_every_command_is_registered(parsers):
    assert sorted(parsers) == COMMANDS  # a command module that fails to import would vanish silently


@pytest.mark.parametrize("name", COMMANDS)
def test_help_exits_0_and_prints_usage(name, capsys):
    code, out, err = _run([name, "--help"], capsys)
    assert code == 0 and out.startswith(f"usage: spacelang {name}") and not err


def _required(parser) -> list:
    return [a for a in parser._actions
            if a.required or (not a.option_strings and a.nargs not in ("?", "*", argparse.SUPPRESS))]


@pytest.mark.parametrize("name", COMMANDS)
def test_missing_required_argument_is_one_line_exit_2(name, parsers, capsys):
    if not _required(parsers[name]):
        pytest.skip(f"{name} has no required argument")
    code, out, err = _run([name], capsys)
    assert code == 2 and not out
    assert err.count("\n") == 1 and err.startswith(f"spacelang {name}: error: ") and "Traceback" not in err


def _actions(prog: str, parser: argparse.ArgumentParser):
    """``(prog, action)`` of every argument of ``parser`` and of its sub-commands, at any depth."""
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        yield prog, action
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(f"{prog} {name}", sub)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help_and_states_its_default(name, parsers):
    for prog, action in _actions(name, parsers[name]):
        label = "/".join(action.option_strings) or action.dest
        assert action.help and action.help is not argparse.SUPPRESS, f"{prog} {label}: no help"
        has_default = action.default not in (None, False, [], argparse.SUPPRESS) and action.option_strings
        if has_default:
            assert "default" in action.help.lower(), f"{prog} {label}: help does not state the default"


def test_version(capsys):
    code, out, _ = _run(["--version"], capsys)
    assert code == 0 and out.strip() == f"spacelang {__version__}"


def test_unknown_command_is_one_line(capsys):
    code, _, err = _run(["frobnicate"], capsys)
    assert code == 2 and err.count("\n") == 1 and "invalid choice" in err


def test_a_library_error_that_escapes_a_command_is_one_clean_message(monkeypatch, capsys):
    from spacelang.errors import DataError

    def boom(args):
        raise DataError("no such data", filename="somewhere")

    import spacelang.commands.count as count
    monkeypatch.setattr(count, "run", boom)
    code, _, err = _run(["count", "x.space"], capsys)
    assert code == 2 and err == "somewhere: error: no such data\n"


@pytest.mark.parametrize("name", COMMANDS)
def test_numeric_options_are_range_checked(name, parsers):
    """A bare ``type=int``/``float`` accepts 0, -1, nan and inf: every number goes through options.py."""
    bare = [f"{prog} {'/'.join(a.option_strings) or a.dest}" for prog, a in _actions(name, parsers[name])
            if a.type in (int, float)]
    assert not bare, f"{name}: use a type from spacelang.commands.options for {', '.join(bare)}"
