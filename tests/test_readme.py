"""The README's example prints what the README says, and the README has two commands."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = (Path(__file__).parents[1] / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def _stable(text: str) -> list[str]:
    """Lines without the clock (left half of the Date/Time rows) or trailing blanks."""
    return [(line[39:] if line.startswith(("Date:", "Time:")) else line).rstrip()
            for line in text.strip().splitlines()]


def test_readme_example_prints_its_documented_summary():
    (code,) = _blocks("python")
    (printed,) = _blocks("text")
    assert len(code.strip().splitlines()) <= 10
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert _stable(out.getvalue()) == _stable(printed)


def test_readme_has_exactly_two_commands():
    commands = _blocks("bash")
    assert len(commands) == 2
    assert commands[0].strip().endswith("python -m ssl_inference demo")
    assert commands[1].strip().endswith("python -m pytest -n 2")
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert "python -m pytest -n 2" in ci  # CI runs the README's test command
