"""Durable writes and the config lock, on real files."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from engine import files
from engine.errors import ConfigError
from engine.tools.policy import edit_policy, load_policy


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_leftovers(tmp_path):
    path = tmp_path / "settings.json"
    files.write_text(path, '{"theme": "dark"}')

    with pytest.raises(RuntimeError, match="disk full"), files.publishing(path) as partial:
        with partial.open("w", encoding="utf-8") as handle:
            handle.write('{"theme": "li')
        raise RuntimeError("disk full")
    with pytest.raises(UnicodeEncodeError):
        files.write_text(path, "\ud800 cannot be encoded")

    assert path.read_text(encoding="utf-8") == '{"theme": "dark"}'
    assert list(tmp_path.iterdir()) == [path]


def test_a_folder_is_swapped_in_whole(tmp_path):
    target = tmp_path / "adapter"
    with files.publishing(target) as partial:
        partial.mkdir()
        (partial / "weights").write_text("old")
        (partial / "old-only").write_text("old")

    with pytest.raises(RuntimeError), files.publishing(target) as partial:
        partial.mkdir()
        (partial / "weights").write_text("half")
        raise RuntimeError("killed")
    assert {path.name: path.read_text() for path in target.iterdir()} == {"weights": "old", "old-only": "old"}

    with files.publishing(target) as partial:
        partial.mkdir()
        (partial / "weights").write_text("new")
    assert {path.name: path.read_text() for path in target.iterdir()} == {"weights": "new"}
    assert list(tmp_path.iterdir()) == [target]


def test_what_a_killed_writer_left_is_cleared_by_the_next_write(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(finished.stdout)
    path = tmp_path / "tools.json"
    abandoned = tmp_path / f".tools.json.{dead_pid}-0badf00d.partial"
    abandoned.write_text("half")
    in_progress = tmp_path / ".tools.json.1-feedf00d.partial"  # pid 1 is alive: someone is writing
    in_progress.write_text("half")

    files.write_text(path, "{}")

    assert sorted(tmp_path.iterdir()) == sorted([path, in_progress])


def test_the_lock_serialises_read_modify_write_across_threads(tmp_path):
    path = tmp_path / "counter.json"
    files.write_text(path, json.dumps({"count": 0}))
    rounds = 20

    def add_one_at_a_time() -> None:
        for _ in range(rounds):
            with files.locked(path):
                count = json.loads(path.read_text())["count"]
                time.sleep(0.001)  # without the lock the other thread reads the same count here
                files.write_text(path, json.dumps({"count": count + 1}))

    threads = [threading.Thread(target=add_one_at_a_time) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert json.loads(path.read_text())["count"] == 2 * rounds


def test_two_threads_editing_the_tool_policy_lose_no_rule():
    names = [f"tool_{index}" for index in range(30)]

    def allow(some: list[str]) -> None:
        for name in some:
            with edit_policy() as policy:
                policy.set_rule(name, "allow")

    threads = [threading.Thread(target=allow, args=(names[start::2],)) for start in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert load_policy().always_allowed == sorted(names)


def test_the_lock_nests_within_a_thread_and_says_who_holds_it_for_too_long(tmp_path):
    path = tmp_path / "cloud.json"
    with files.locked(path), files.locked(path):
        pass

    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with files.locked(path):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        waiting = pytest.raises(ConfigError, match=r"cloud\.json has been locked by another Understudy")
        with waiting, files.locked(path, timeout_s=0.1):
            pass
    finally:
        release.set()
        holder.join()
