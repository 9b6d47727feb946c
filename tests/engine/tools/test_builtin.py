"""The built-in tools on real files, real processes and a real local HTTP server: happy paths, and
corpora of path escapes and command chains that must all be refused."""

from __future__ import annotations

import http.server
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.tools import OUTPUT_LIMIT_CHARS, ToolContext, ToolError, registered_tools
from engine.tools.builtin import (
    CalculatorTool,
    DateTimeTool,
    FileReadTool,
    FileSearchTool,
    HttpGetTool,
    ShellTool,
    UnitConvertTool,
    WriteNoteTool,
    resolve_inside_grants,
)

CANARY = "CANARY-outside-the-grant"
NO_GRANTS = ToolContext()


@pytest.fixture
def sandbox(tmp_path):
    """A granted folder with files and symlinks leading out, beside an outside folder holding a canary."""
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
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def escape_corpus(granted: Path, outside: Path) -> list[str]:
    return [
        "..",
        "../outside/secret.txt",
        "../../etc/passwd",
        "/etc/passwd",
        "//etc/passwd",
        str(outside / "secret.txt"),
        f"{granted}/../outside/secret.txt",
        "sub/../../outside/secret.txt",
        "./../outside/secret.txt",
        "~",
        "~/.bashrc",
        "link_to_secret",
        "hop",
        "linked_dir/secret.txt",
        "linked_dir",
        str(granted.parent / "granted-lookalike" / "secret.txt"),
        "/proc/self/root/etc/passwd",
        "%2e%2e/outside/secret.txt",
        "%2e%2e%2foutside%2fsecret.txt",
        "notes.txt\x00/../../outside/secret.txt",
        "..\x00",
    ]


# --- calculator ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("23.5% of 1,840", 432.4),
        ("(3 + 4) * 2", 14),
        ("2^10", 1024),
        ("7 // 2 + 7 % 2", 4),
        ("-(2 ** 3)", -8),
        ("sqrt(16) + abs(-2)", 6),
        ("round(2.567, 2)", 2.57),
        ("max(1, 5, 3) - min(4, 2)", 3),
        ("200 * 15%", 30),
        ("1,234,567.5 / 2", 617283.75),
        ("log(e) + exp(0) + cos(0) + sin(0) + tan(0)", 3),
        ("round(pi, 4)", 3.1416),
    ],
)
def test_the_calculator_evaluates_arithmetic(expression, value):
    result = CalculatorTool().run({"expression": expression}, NO_GRANTS)
    assert result.data["value"] == pytest.approx(value)
    assert result.text.endswith(f"= {result.data['value']:.12g}")


def test_percent_of_a_number_with_a_thousands_separator_reads_as_people_mean_it():
    result = CalculatorTool().run({"expression": "23.5% of 1,840"}, NO_GRANTS)
    assert result.data["value"] == 432.4
    assert result.text == "23.5% of 1,840 = 432.4"


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os')",
        "__import__('os').system('touch pwned')",
        "().__class__",
        "().__class__.__bases__[0].__subclasses__()",
        "open('/etc/passwd')",
        "eval('1')",
        "lambda: 1",
        "[1, 2]",
        "'a' * 3",
        "x",
        "True + 1",
        "1 if 1 else 2",
        "9**9**9",
        "10**10000 * 10**10000",
        "2 ** 100000",
        "round(5, -10**6)",
        "1" * 5000,
        "1 + " * 2000 + "1",
        "(" * 200 + "1" + ")" * 200,
        "1 / 0",
        "sqrt(-1)",
        "1e308 * 10",
        "(-8) ** 0.5",
        "max(1,840)",
        "",
    ],
)
def test_the_calculator_refuses_everything_but_arithmetic(expression):
    with pytest.raises(ToolError):
        CalculatorTool().run({"expression": expression}, NO_GRANTS)


# --- datetime and units ----------------------------------------------------------------------------


def test_datetime_gives_the_current_time_in_a_zone():
    result = DateTimeTool().run({"timezone": "Asia/Tokyo"}, NO_GRANTS)
    assert result.data["timezone"] == "Asia/Tokyo"
    assert result.data["utc_offset"] == "UTC+09:00"
    assert "JST" in result.text


def test_datetime_converts_between_zones():
    arguments = {
        "datetime": "2025-03-01T09:30",
        "from_timezone": "Europe/London",
        "timezone": "America/New_York",
    }
    result = DateTimeTool().run(arguments, NO_GRANTS)
    assert result.data["iso"] == "2025-03-01T04:30:00-05:00"
    assert result.data["weekday"] == "Saturday"
    offset = DateTimeTool().run({"datetime": "2025-07-01T12:00Z", "timezone": "Asia/Kolkata"}, NO_GRANTS)
    assert offset.data["iso"] == "2025-07-01T17:30:00+05:30"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "unknown time zone"),
        ({"timezone": "../../etc/passwd"}, "unknown time zone"),
        ({"datetime": "2025-03-01T09:30"}, "from_timezone"),
        ({"datetime": "yesterday", "from_timezone": "UTC"}, "ISO 8601"),
        ({"from_timezone": "UTC"}, "only applies"),
    ],
)
def test_datetime_explains_what_it_cannot_do(arguments, message):
    with pytest.raises(ToolError, match=message):
        DateTimeTool().run(arguments, NO_GRANTS)


@pytest.mark.parametrize(
    ("value", "from_unit", "to_unit", "expected"),
    [
        (5, "km", "mi", 3.106855961),
        (3, "feet", "inches", 36),
        (1, "lb", "g", 453.59237),
        (100, "C", "F", 212),
        (0, "K", "celsius", -273.15),
        (1, "gallon", "litres", 3.785411784),
        (100, "km/h", "mph", 62.13711922),
        (2, "GiB", "MB", 2147.483648),
        (100, "Mb", "MB", 12.5),
    ],
)
def test_unit_convert(value, from_unit, to_unit, expected):
    result = UnitConvertTool().run({"value": value, "from_unit": from_unit, "to_unit": to_unit}, NO_GRANTS)
    assert result.data["value"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("from_unit", "to_unit", "message"),
    [("kg", "m", "mass.*length"), ("C", "km", "temperature"), ("parsec", "m", "unknown unit 'parsec'")],
)
def test_unit_convert_refuses_incompatible_or_unknown_units(from_unit, to_unit, message):
    with pytest.raises(ToolError, match=message):
        UnitConvertTool().run({"value": 1, "from_unit": from_unit, "to_unit": to_unit}, NO_GRANTS)


def test_arguments_are_checked_against_the_schema_and_the_bad_one_is_named():
    with pytest.raises(ToolError, match="'value'"):
        UnitConvertTool().run({"value": "five", "from_unit": "km", "to_unit": "mi"}, NO_GRANTS)
    with pytest.raises(ToolError, match="'to_unit' is a required property"):
        UnitConvertTool().run({"value": 5, "from_unit": "km"}, NO_GRANTS)
    with pytest.raises(ToolError, match="'confirm' was unexpected"):
        CalculatorTool().run({"expression": "1", "confirm": True}, NO_GRANTS)


# --- paths -----------------------------------------------------------------------------------------


def test_paths_inside_the_grant_resolve(sandbox):
    granted, _, context = sandbox
    assert resolve_inside_grants("notes.txt", context) == granted / "notes.txt"
    assert resolve_inside_grants(str(granted / "sub" / "report.md"), context) == granted / "sub" / "report.md"
    assert resolve_inside_grants("sub/../notes.txt", context) == granted / "notes.txt"
    assert resolve_inside_grants("%2e%2e/x", context) == granted / "%2e%2e" / "x"  # taken literally


def test_every_path_escape_is_refused_by_every_file_tool(sandbox):
    granted, outside, context = sandbox
    before = snapshot(granted.parent)
    escapes = []
    for path in escape_corpus(granted, outside):
        calls = [
            (FileReadTool(), {"path": path}),
            (FileSearchTool(), {"query": "CANARY", "folder": path}),
            (ShellTool(), {"argv": ["cat", "secret.txt"], "cwd": path}),
            (WriteNoteTool(), {"file_name": "escaped.txt", "text": "x", "folder": path}),
        ]
        for tool, arguments in calls:
            try:
                result = tool.run(arguments, context)
            except ToolError as error:
                assert CANARY not in str(error)
                continue
            escapes.append((tool.name, path, result.text))
    assert escapes == []
    assert snapshot(granted.parent) == before


def test_write_note_file_names_cannot_leave_the_grant(sandbox):
    granted, outside, context = sandbox
    before_outside = snapshot(outside)
    unique = f"escaped-{os.getpid()}-{time.monotonic_ns()}.txt"
    refused = [
        f"../{unique}",
        f"../../{unique}",
        f"sub/../../{unique}",
        f"linked_dir/{unique}",
        f"/tmp/{unique}",
        str(outside / unique),
        f"~/{unique}",
        f"{unique}\x00.txt",
    ]
    for file_name in refused:
        with pytest.raises(ToolError):
            WriteNoteTool().run({"file_name": file_name, "text": "escaped"}, context)
    with pytest.raises(ToolError):  # a symlink inside the grant whose target is outside
        WriteNoteTool().run(
            {"file_name": "link_to_secret", "text": "overwritten", "overwrite": True}, context
        )
    literal = WriteNoteTool().run({"file_name": f"%2e%2e/{unique}", "text": "inside"}, context)
    assert Path(literal.data["path"]) == granted / "%2e%2e" / unique
    assert snapshot(outside) == before_outside
    assert (outside / "secret.txt").read_text() == CANARY
    assert list(granted.parent.rglob(unique)) == [granted / "%2e%2e" / unique]
    assert not (Path.home() / unique).exists() and not Path("/tmp", unique).exists()


def test_file_tools_need_a_grant(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    calls = [
        (FileReadTool(), {"path": str(tmp_path / "a.txt")}),
        (FileSearchTool(), {"query": "a"}),
        (WriteNoteTool(), {"file_name": "b.txt", "text": "b"}),
        (ShellTool(), {"argv": ["ls"]}),
    ]
    for tool, arguments in calls:
        with pytest.raises(ToolError, match="must grant a folder first"):
            tool.run(arguments, NO_GRANTS)
    assert not (tmp_path / "b.txt").exists()


def test_the_refusal_names_the_granted_folders(sandbox):
    granted, _, context = sandbox
    with pytest.raises(ToolError, match=f"outside the granted folders \\({granted}\\)"):
        FileReadTool().run({"path": "/etc/passwd"}, context)


# --- file_search, file_read, write_note ------------------------------------------------------------


def test_file_search_finds_names_and_contents_case_insensitively(sandbox):
    granted, _, context = sandbox
    by_content = FileSearchTool().run({"query": "pears"}, context)
    assert by_content.data["matches"] == [
        {
            "path": str(granted / "notes.txt"),
            "match": "content",
            "line": "Shopping list: apples, Pears, bread",
        }
    ]
    by_name = FileSearchTool().run({"query": "REPORT", "folder": "sub"}, context)
    assert [m["path"] for m in by_name.data["matches"]] == [str(granted / "sub" / "report.md")]
    assert FileSearchTool().run({"query": "no such words"}, context).data["matches"] == []


def test_file_search_never_follows_symlinks_out_of_the_grant(sandbox):
    _, _, context = sandbox
    for query in ("CANARY", "secret"):
        result = FileSearchTool().run({"query": query}, context)
        assert result.data["matches"] == [] and CANARY not in result.text


def test_file_search_caps_results_and_skips_large_files_content(sandbox):
    granted, _, context = sandbox
    for index in range(30):
        (granted / f"match-{index:02d}.txt").write_text("x")
    capped = FileSearchTool().run({"query": "match-", "max_results": 5}, context)
    assert len(capped.data["matches"]) == 5 and capped.data["complete"] is False
    (granted / "huge.log").write_text("a" * (1024 * 1024 + 10) + "needle")
    assert FileSearchTool().run({"query": "needle"}, context).data["matches"] == []


def test_file_read_reads_text_and_caps_output(sandbox):
    granted, _, context = sandbox
    assert FileReadTool().run({"path": "notes.txt"}, context).text.startswith("Shopping list")
    (granted / "long.txt").write_text("line\n" * 10_000)
    long = FileReadTool().run({"path": "long.txt"}, context)
    assert long.data["truncated"] is True and len(long.text) < OUTPUT_LIMIT_CHARS + 200
    (granted / "image.bin").write_bytes(b"\x89PNG\x00\x00\x01")
    with pytest.raises(ToolError, match="binary"):
        FileReadTool().run({"path": "image.bin"}, context)
    with pytest.raises(ToolError, match="not a file"):
        FileReadTool().run({"path": "sub"}, context)


def test_write_note_writes_and_refuses_to_overwrite_unless_asked(sandbox):
    granted, _, context = sandbox
    result = WriteNoteTool().run({"file_name": "journal/today.md", "text": "# Today\nwrote tests\n"}, context)
    target = granted / "journal" / "today.md"
    assert result.data["path"] == str(target) and target.read_text() == "# Today\nwrote tests\n"
    with pytest.raises(ToolError, match="already exists"):
        WriteNoteTool().run({"file_name": "journal/today.md", "text": "replaced"}, context)
    assert target.read_text() == "# Today\nwrote tests\n"
    WriteNoteTool().run({"file_name": "journal/today.md", "text": "replaced", "overwrite": True}, context)
    assert target.read_text() == "replaced"
    assert [path.name for path in target.parent.iterdir()] == ["today.md"]  # no temporary files left


# --- shell -----------------------------------------------------------------------------------------


def test_shell_runs_a_program_in_the_grant(sandbox):
    granted, _, context = sandbox
    listing = ShellTool().run({"argv": ["ls"]}, context)
    assert listing.data["exit_code"] == 0 and "notes.txt" in listing.text
    (granted / "sub" / "hello.py").write_text("import os\nprint('hello from', os.getcwd())\n")
    script = ShellTool().run({"argv": [sys.executable, "hello.py"], "cwd": "sub"}, context)
    assert f"hello from {granted / 'sub'}" in script.text
    failing = ShellTool().run({"argv": ["ls", "no-such-file"]}, context)
    assert failing.data["exit_code"] != 0
    with pytest.raises(ToolError, match="not found"):
        ShellTool().run({"argv": ["no-such-program-understudy"]}, context)


def chaining_corpus(canary: Path) -> list[list[str]]:
    touch = f"touch {canary}"
    return [
        ["echo", "hi;", "touch", str(canary)],
        ["echo", f"hi; {touch}"],
        ["echo", "hi", "&&", "touch", str(canary)],
        ["false", "||", "touch", str(canary)],
        ["echo", "hi", "|", "tee", str(canary)],
        ["echo", f"$({touch})"],
        ["echo", f"`{touch}`"],
        ["echo", "hi", ">", str(canary)],
        ["echo", f"hi>{canary}"],
        ["cat", "<", "/etc/passwd"],
        ["echo", f"hi\n{touch}"],
        ["bash", "-c", touch],
        ["sh", "-c", touch],
        ["/bin/sh", "-c", touch],
        ["BASH.EXE", "-c", touch],
        ["zsh", "-c", touch],
        ["dash", "-c", touch],
        ["fish", "-c", touch],
        ["pwsh", "-Command", touch],
        ["cmd", "/c", touch],
        ["python", "-c", f"open('{canary}', 'w')"],
        ["python3", "-c", f"open('{canary}', 'w')"],
        [sys.executable, "-c", f"open('{canary}', 'w')"],
        ["python3.11", "-Ic", f"open('{canary}', 'w')"],
        ["python3", f"-copen('{canary}', 'w')"],
        ["perl", "-e", f"open(F, '>', '{canary}')"],
        ["perl", "-ne", "print"],
        ["node", "--eval", "1"],
        ["env", "touch", str(canary)],
        ["/usr/bin/env", "touch", str(canary)],
        ["xargs", "touch"],
        ["sudo", "touch", str(canary)],
        ["su", "-c", touch],
        ["nohup", "touch", str(canary)],
        ["timeout", "5", "touch", str(canary)],
        ["find", ".", "-exec", "touch", str(canary), "+"],
    ]


def test_command_chaining_and_command_runners_are_refused(sandbox, tmp_path):
    _, _, context = sandbox
    canary = tmp_path / "pwned"
    corpus = chaining_corpus(canary)
    accepted = []
    for argv in corpus:
        try:
            ShellTool().run({"argv": argv}, context)
        except ToolError:
            continue
        accepted.append(argv)
    assert accepted == []
    assert len(corpus) >= 30 and not canary.exists()


def test_the_shell_timeout_kills_the_command(sandbox):
    granted, _, context = sandbox
    started = time.monotonic()
    with pytest.raises(ToolError, match="ran past its 1 s limit"):
        ShellTool(timeout_s=1).run({"argv": ["sleep", "30"]}, context)
    assert time.monotonic() - started < 5
    (granted / "late.py").write_text("import time\ntime.sleep(1.5)\nopen('late-canary', 'w').close()\n")
    with pytest.raises(ToolError):
        ShellTool(timeout_s=0.5).run({"argv": [sys.executable, "late.py"]}, context)
    time.sleep(2)
    assert not (granted / "late-canary").exists()


def test_the_shell_output_is_capped(sandbox):
    _, _, context = sandbox
    result = ShellTool().run({"argv": ["seq", "1", "300000"]}, context)
    assert result.data["exit_code"] == 0 and result.data["truncated"] is True
    assert len(result.text) < OUTPUT_LIMIT_CHARS + 200


# --- http_get --------------------------------------------------------------------------------------


ROUTES: dict[str, tuple[int, dict[str, str], bytes]] = {
    "/": (200, {"Content-Type": "text/plain; charset=utf-8"}, "hello from the stand-in ✓".encode()),
    "/missing": (404, {"Content-Type": "text/plain"}, b"no such page"),
    "/big": (200, {"Content-Type": "text/html"}, b"<p>" + b"a" * (2 * 1024 * 1024)),
    "/image": (200, {"Content-Type": "image/png"}, b"\x89PNG\x00" * 100),
    "/to-home": (302, {"Location": "/"}, b""),
    "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
    "/to-ftp": (302, {"Location": "ftp://127.0.0.1/"}, b""),
}


class StandInHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status, headers, body = ROUTES[self.path]
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


@pytest.fixture
def web_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandInHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_http_get_fetches_text_with_status_and_type(web_server):
    result = HttpGetTool().run({"url": web_server + "/"}, NO_GRANTS)
    assert result.data["status"] == 200 and result.data["content_type"] == "text/plain"
    assert "hello from the stand-in ✓" in result.text
    missing = HttpGetTool().run({"url": web_server + "/missing"}, NO_GRANTS)
    assert missing.data["status"] == 404 and "no such page" in missing.text
    redirected = HttpGetTool().run({"url": web_server + "/to-home"}, NO_GRANTS)
    assert redirected.data["url"] == web_server + "/" and "hello" in redirected.text


def test_http_get_caps_what_it_returns(web_server):
    big = HttpGetTool().run({"url": web_server + "/big"}, NO_GRANTS)
    assert big.data["truncated"] is True and len(big.text) < OUTPUT_LIMIT_CHARS + 200
    image = HttpGetTool().run({"url": web_server + "/image"}, NO_GRANTS)
    assert "image/png content, 500 bytes, not shown" in image.text


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/",
        "javascript:alert(1)",
        "data:text/plain,hello",
        "http://user:secret@127.0.0.1/",
        "http:///no-host",
        "/relative/path",
    ],
)
def test_http_get_refuses_other_schemes_and_credentials(url):
    with pytest.raises(ToolError):
        HttpGetTool().run({"url": url}, NO_GRANTS)


@pytest.mark.parametrize("path", ["/to-file", "/to-ftp"])
def test_http_get_refuses_redirects_to_other_schemes(web_server, path):
    with pytest.raises(ToolError, match="not an http or https URL"):
        HttpGetTool().run({"url": web_server + path}, NO_GRANTS)


def test_http_get_reports_unreachable_hosts():
    with pytest.raises(ToolError, match="could not fetch"):
        HttpGetTool(timeout_s=5).run({"url": "http://127.0.0.1:9/"}, NO_GRANTS)


# --- registration ----------------------------------------------------------------------------------


def test_the_builtins_register_through_the_plugin_hook():
    import jsonschema

    tools = registered_tools()
    expected = {
        "calculator": "read",
        "datetime": "read",
        "unit_convert": "read",
        "file_search": "read",
        "file_read": "read",
        "write_note": "write",
        "shell": "exec",
        "http_get": "network",
    }
    assert {name: tools[name].risk for name in expected} == expected
    for name in expected:
        tool = tools[name]
        assert tool.source == "builtin" and tool.description and tool.timeout_s > 0
        assert tool.parameters["type"] == "object" and tool.parameters["additionalProperties"] is False
        assert set(tool.parameters["required"]) <= set(tool.parameters["properties"])
        jsonschema.Draft202012Validator.check_schema(tool.parameters)


def test_commands_do_not_see_the_apps_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    from engine.tools import ToolContext
    from engine.tools.builtin import ShellTool

    result = ShellTool().run({"argv": ["printenv"]}, ToolContext(granted_folders=(str(tmp_path.resolve()),)))
    assert "sk-should-not-leak" not in result.text
