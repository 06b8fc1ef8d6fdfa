"""The command line's help: every option of every command (and of the try-it Hub) says what it does and, when it
takes a value, its default."""

import argparse
import re

import pytest

from longwriter_data.cli import _parser, main
from longwriter_data.testing import fake_hub


def _commands() -> dict[str, argparse.ArgumentParser]:
    return next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices


def _entries(help_text: str) -> dict[str, str]:
    """Each option's help as printed: its line starting with the option and the indented lines that follow."""
    entries, current = {}, None
    for line in help_text.splitlines():
        if match := re.match(r"  (-\S+)", line):
            current = match.group(1).rstrip(",")
            entries[current] = line
        elif current and line.startswith("      "):
            entries[current] += " " + line.strip()
        else:
            current = None
    return {name: " ".join(text.split()) for name, text in entries.items()}


def _check(parser: argparse.ArgumentParser, printed: str) -> None:
    entries = _entries(printed)
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        entry = entries[action.option_strings[0]]
        meaning = entry.split(None, 1 if action.nargs == 0 else 2)[-1]
        assert len(meaning.split()) >= 2, f"{action.option_strings[0]} has no help: {entry!r}"
        if action.nargs != 0 and not action.required:
            assert "default" in entry, f"{action.option_strings[0]} does not say its default: {entry!r}"


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_option_of_every_command_says_what_it_does_and_its_default(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    _check(_commands()[command], capsys.readouterr().out)


def test_the_export_help_shows_the_format_and_test_size_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    entries = _entries(capsys.readouterr().out)
    assert "(default: messages)" in entries["--format"] and "(default: 0.0)" in entries["--test-size"]
    assert "(default: RUN_DIR/dataset)" in entries["--out"]


def test_the_try_it_hub_help_names_its_default_token_and_speaks_to_users(capsys):
    with pytest.raises(SystemExit) as done:
        fake_hub.main(["--help"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    entries = _entries(printed)
    assert f"(default: {fake_hub.DEFAULT_TOKEN})" in entries["--token"] and "HF_TOKEN" in entries["--token"]
    assert "(default: 0)" in entries["--port"] and "(default: me)" in entries["--user"]
    assert "load_dataset" in printed and not re.search(r"\btests?\b", printed)


@pytest.mark.parametrize("argv, expected", [
    (["estimate", "--config", "r.yaml", "--tokens-per-second", "0"], "--tokens-per-second: must be above 0"),
    (["estimate", "--config", "r.yaml", "--default-words", "-5"], "--default-words: must be at least 1"),
    (["estimate", "--config", "r.yaml", "--paragraph-words", "x"], "--paragraph-words: 'x' is not a whole number"),
    (["pools", "--config", "r.yaml", "--samples", "-1"], "--samples: must be at least 0"),
    (["export", "run", "--out", ""], "--out: must name a folder"),
])
def test_numbers_and_folders_on_the_command_line_are_checked_before_anything_runs(capsys, argv, expected):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and expected in capsys.readouterr().err
