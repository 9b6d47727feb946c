"""Running one program in a granted folder, without a shell.

``check_command`` refuses chaining and inline code before anything starts; here the process gets a
filtered environment and its own process group, its output is capped while it is read, and it is killed
with everything it started when it runs past its time limit.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

from engine.errors import ToolError
from engine.tools import OUTPUT_LIMIT_CHARS, Risk, ToolContext, ToolResult
from engine.tools.builtin.base import BuiltinTool, object_schema
from engine.tools.builtin.security import (
    check_command,
    command_environment,
    granted_roots,
    resolve_inside_grants,
)


def _kill_process_tree(process: subprocess.Popen) -> None:
    if os.name == "posix":
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    else:
        process.kill()


class ShellTool(BuiltinTool):
    name = "shell"
    examples = (
        "run ls in my projects folder",
        "show me the directory listing with ls -la",
        "run git diff",
        "execute python --version",
        "check free memory with free -m",
        "run the command make test",
    )
    description = (
        "Run one program with arguments (an argv list, no shell: no pipes, chaining or redirection) in a "
        "granted folder, and return its exit code and output."
    )
    parameters = object_schema(
        {
            "argv": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "maxItems": 200,
                "description": "the program and its arguments, e.g. ['ls', '-l']",
            },
            "cwd": {
                "type": "string",
                "description": "a folder inside a granted folder; the first grant by default",
            },
        },
        required=("argv",),
    )
    risk: Risk = "exec"

    def execute(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        argv = arguments["argv"]
        if not argv[0]:
            raise ToolError("argv[0] is empty; give the program to run")
        check_command(argv)
        cwd = resolve_inside_grants(arguments.get("cwd", str(granted_roots(context)[0])), context)
        if not cwd.is_dir():
            raise ToolError(f"{cwd} is not a folder; give cwd as a folder inside the granted ones")
        command = shlex.join(argv)
        output, total_bytes, exit_code, timed_out = self._run(argv, cwd)
        text = output.decode("utf-8", errors="replace")
        truncated = total_bytes > len(output)
        if truncated:
            text += f"\n[output cut short: showing the first {len(output):,} of {total_bytes:,} bytes]"
        if timed_out:
            raise ToolError(
                f"`{command}` ran past its {self.timeout_s:g} s limit and was stopped. "
                f"Its last output: {text[-500:] or '(none)'}"
            )
        return ToolResult(
            f"$ {command}\nexit code {exit_code}\n{text}",
            {"argv": argv, "cwd": str(cwd), "exit_code": exit_code, "truncated": truncated},
        )

    def _run(self, argv: list[str], cwd: Path) -> tuple[bytes, int, int | None, bool]:
        """Run with output capped while it is read, so a chatty program cannot fill the memory.

        Returns the first output bytes, the total output size, the exit code and whether it timed out.
        """
        kept: list[bytes] = []
        total = [0]

        def drain(stream) -> None:
            # The reader owns the pipe and closes it, so a stuck pipe can never block the caller.
            with stream:
                for chunk in iter(lambda: stream.read1(65536), b""):
                    room = OUTPUT_LIMIT_CHARS - total[0]
                    if room > 0:
                        kept.append(chunk[:room])
                    total[0] += len(chunk)

        try:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                shell=False,
                start_new_session=os.name == "posix",
                env=command_environment(),
            )
        except FileNotFoundError:
            raise ToolError(
                f"'{argv[0]}' was not found; check the program's name or give its full path"
            ) from None
        except PermissionError:
            raise ToolError(f"'{argv[0]}' is not executable") from None
        except OSError as error:
            raise ToolError(f"could not start '{argv[0]}': {error.strerror}") from None
        reader = threading.Thread(target=drain, args=(process.stdout,), daemon=True)
        reader.start()
        timed_out = False
        try:
            process.wait(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_process_tree(process)
            process.wait()
        reader.join(timeout=1.0)
        if reader.is_alive():  # it left background processes holding the output open
            _kill_process_tree(process)
            reader.join(timeout=5.0)
        return b"".join(kept), total[0], process.returncode, timed_out
