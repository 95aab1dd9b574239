"""Every command runs under both of its names: the documented ``python -m`` form (a shim) and the ``ndgan``
console script, which must reach the same parser."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ndgan.cli import COMMANDS, console

ROOT = Path(__file__).resolve().parents[2]


def test_every_python_m_form_reaches_its_command():
    """One interpreter per command (what a user's shell runs); the help text is the command's own."""
    for name, module in COMMANDS.items():
        proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 0, (module, proc.stderr)
        assert proc.stdout.startswith(f"usage: python -m {module}"), (module, proc.stdout[:200])


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_console_script_dispatches_to_the_same_parser(name, capsys):
    with pytest.raises(SystemExit) as e:
        console([name, "--help"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m {COMMANDS[name]}")


def test_the_console_script_lists_commands_and_refuses_unknown_ones(capsys):
    assert console(["--help"]) == 0
    listing = capsys.readouterr().out
    assert all(f"  {name} " in listing for name in COMMANDS)
    assert console(["genrate", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'generate'" in err
    assert console([]) == 2  # no command: the listing, and a failure exit


def test_the_console_script_is_installed_by_the_package():
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "ndgan"]
    assert script.load() is console
