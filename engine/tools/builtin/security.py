"""Every rule that decides what a built-in tool may touch: paths, commands and URLs.

Kept in one module so the whole boundary can be read and reviewed at once. Paths must resolve inside
the folders the user granted; commands run without a shell, never chain or run inline code, and see only
a few environment variables; URLs are plain http(s) without credentials.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from engine.errors import ToolError
from engine.tools import ToolContext

# --- Paths -------------------------------------------------------------------------------------------


def granted_roots(context: ToolContext) -> list[Path]:
    """The granted folders, canonicalised (symlinks resolved) so containment checks compare like with like."""
    if not context.granted_folders:
        raise ToolError(
            "no folder is granted to the tools yet: the user must grant a folder first "
            "(`understudy tools grant FOLDER`, or Tools → Grant a folder… in the app)"
        )
    return [Path(os.path.realpath(Path(folder).expanduser())) for folder in context.granted_folders]


def resolve_inside_grants(path: str, context: ToolContext) -> Path:
    """The canonical path ``path`` names, if it lies inside a granted folder; a ToolError otherwise.

    Relative paths are taken from the first granted folder. ``..``, ``~`` and symlinks are resolved
    before the check, so none of them can lead outside.
    """
    roots = granted_roots(context)
    granted = ", ".join(str(root) for root in roots)
    if "\x00" in path:
        raise ToolError(f"the path {path!r} contains a null byte; name a file inside {granted}")
    try:
        candidate = Path(path).expanduser()
    except RuntimeError:  # "~" with no home directory to expand it to
        raise ToolError(f"'{path}' cannot be resolved; name a file inside {granted}") from None
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    resolved = Path(os.path.realpath(candidate))
    if is_inside(resolved, roots):
        return resolved
    raise ToolError(
        f"'{path}' is outside the granted folders ({granted}); use a path inside one of them, "
        "or ask the user to grant the folder"
    )


def is_inside(path: Path, roots: list[Path]) -> bool:
    """Whether the canonical ``path`` is one of ``roots`` or below one (compared by path parts)."""
    return any(path.is_relative_to(root) for root in roots)


# --- Commands ----------------------------------------------------------------------------------------

# Programs whose job is to run other commands: allowing them would let a model chain or escalate.
COMMAND_RUNNERS = frozenset(
    {
        "sh", "bash", "zsh", "dash", "fish", "ksh", "mksh", "csh", "tcsh", "ash", "busybox", "cmd",
        "powershell", "pwsh", "env", "xargs", "sudo", "su", "doas", "pkexec", "runuser", "nohup", "nice",
        "timeout", "setsid", "stdbuf", "time", "watch", "chroot", "exec", "eval", "script",
    }
)  # fmt: skip
# Programs and the flags with which they run code or commands given on the command line.
INLINE_CODE_FLAGS = {
    "python": ("-c",),
    "pythonw": ("-c",),
    "py": ("-c",),
    "perl": ("-e", "-E"),
    "ruby": ("-e",),
    "node": ("-e", "-p", "--eval", "--print"),
    "nodejs": ("-e", "-p", "--eval", "--print"),
    "php": ("-r",),
    "osascript": ("-e",),
    "find": ("-exec", "-execdir", "-ok", "-okdir"),
}
SHELL_METACHARACTERS = (";", "&&", "||", "|", "`", "$(", ">", "<", "\n", "\r", "\x00")


def _program_name(argv0: str) -> str:
    """'/usr/bin/Python3.11.exe' -> 'python': the program family, whatever the path or version."""
    name = re.split(r"[\\/]", argv0)[-1].lower()
    name = re.sub(r"\.(exe|cmd|bat|com)$", "", name)
    return re.sub(r"[\d.\-]+$", "", name) or name


def check_command(argv: list[str]) -> None:
    """Reject commands that chain, redirect or run code inline; the policy asks the user about the rest."""
    for argument in argv:
        for token in SHELL_METACHARACTERS:
            if token in argument:
                raise ToolError(
                    f"the argument {argument!r} contains {token!r}: commands run without a shell, one at a "
                    "time, so chaining, pipes and redirections are refused. Run one command per call"
                )
    program = _program_name(argv[0])
    if program in COMMAND_RUNNERS:
        raise ToolError(
            f"'{argv[0]}' runs other commands, so it is refused; call the program you need directly"
        )
    flags = INLINE_CODE_FLAGS.get(program, ())
    for argument in argv[1:]:
        if any(_is_flag(argument, flag) for flag in flags):
            raise ToolError(
                f"'{argv[0]} {argument}' runs code or a command given on the command line, which is refused; "
                "call the program you need directly, or write the code to a file with write_note and run it"
            )


def _is_flag(argument: str, flag: str) -> bool:
    """Whether ``argument`` sets ``flag``, also inside short-option clusters: python -Ic, -cprint(1)."""
    if argument == flag or argument.startswith(flag + "="):
        return True
    if len(flag) != 2 or argument.startswith("--"):
        return False
    cluster = re.match(r"-([A-Za-z]+)", argument)
    return cluster is not None and flag[1] in cluster.group(1)


# Only what programs need to run; API keys and tokens in the app's environment stay out of reach.
_PASSED_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT", "USERPROFILE")


def command_environment() -> dict[str, str]:
    """The few variables a command is started with, taken from the app's environment."""
    return {name: os.environ[name] for name in _PASSED_ENVIRONMENT if name in os.environ}


# --- URLs --------------------------------------------------------------------------------------------


def check_url(url: str) -> None:
    """Only plain http(s) URLs: no file://, no ftp://, no credentials riding along in the URL."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as error:
        raise ToolError(f"'{url}' is not a valid URL ({error})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ToolError(f"'{url}' is not an http or https URL; http_get fetches only those")
    if not host:
        raise ToolError(f"'{url}' has no host name")
    if parts.username is not None or parts.password is not None:
        raise ToolError(f"'{url}' carries a user name or password; credentials in URLs are refused")
