"""The README's first section is the promise a new user reads first: keep it and CI in step."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def first_section_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    first_section = readme.split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", first_section, re.DOTALL)]


def test_the_first_section_holds_exactly_two_commands_setup_then_tests():
    setup, tests = first_section_commands()
    assert "\n" not in setup and "\n" not in tests
    assert setup.endswith("understudy")
    assert "pytest" in tests and "--durations=15" in tests


def test_ci_runs_the_readme_test_command_and_nothing_else():
    ci_lines = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))
    ]
    assert ci_lines == [first_section_commands()[1]]
