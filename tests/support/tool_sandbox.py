"""A granted folder with symlinks leading out of it, for the built-in tools' tests.

Beside the grant sit an outside folder and a look-alike folder, each holding a canary file: a test that
finds the canary in a tool's output, or finds either folder changed, has caught an escape.
"""

from __future__ import annotations

from pathlib import Path

from engine.tools import ToolContext

CANARY = "CANARY-outside-the-grant"
NO_GRANTS = ToolContext()


def make_sandbox(tmp_path: Path) -> tuple[Path, Path, ToolContext]:
    """The granted folder, the outside folder, and a context granting only the first."""
    granted = tmp_path / "granted"
    outside = tmp_path / "outside"
    lookalike = tmp_path / "granted-lookalike"  # shares the grant's name as a string prefix
    for folder in (granted / "sub", outside, lookalike):
        folder.mkdir(parents=True)
    (outside / "secret.txt").write_text(CANARY)
    (lookalike / "secret.txt").write_text(CANARY)
    (granted / "notes.txt").write_text("Shopping list: apples, Pears, bread\n")
    (granted / "sub" / "report.md").write_text("# Quarterly report\nrevenue grew\n")
    (granted / "link_to_secret").symlink_to(outside / "secret.txt")
    (granted / "linked_dir").symlink_to(outside, target_is_directory=True)
    (granted / "hop").symlink_to(granted / "link_to_secret")
    return granted, outside, ToolContext(granted_folders=(str(granted),))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes, to show that nothing was written or changed."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}
