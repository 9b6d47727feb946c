"""`understudy app --self-test` and `understudy bench startup` as a user runs them (offscreen)."""

from __future__ import annotations

import json
import subprocess

import pytest
from PySide6.QtGui import QImage
from understudy_command import run_understudy


def run(*args: str) -> subprocess.CompletedProcess:
    return run_understudy(*args, QT_QPA_PLATFORM="offscreen")


@pytest.mark.slow
def test_the_self_test_answers_through_the_real_window_on_the_real_model(tmp_path):
    result = run("app", "--self-test")
    assert result.returncode == 0, result.stderr
    assert "self-test passed: smollm2-135m-instruct streamed" in result.stdout


def test_the_self_test_answers_through_the_real_window_and_saves_a_screenshot(tmp_path, fake_model):
    fake_model.script("Red, green and blue.")
    screenshot = tmp_path / "window.png"
    result = run("app", "--self-test", "--screenshot", str(screenshot))
    assert result.returncode == 0, result.stderr
    assert f"self-test passed: {fake_model.id} streamed 4 pieces" in result.stdout
    image = QImage(str(screenshot))
    assert image.width() >= 800 and image.height() >= 500


def test_the_self_test_fails_with_a_message_when_the_model_is_broken(tmp_path, understudy_home):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model")
    understudy_home.mkdir(parents=True, exist_ok=True)
    (understudy_home / "settings.json").write_text(json.dumps({"default_model": "broken"}))
    (understudy_home / "models.toml").write_text(
        '[models.broken]\nname = "Broken"\nfamily = "llama"\nrole = "generalist"\nbackend = "llama_cpp"\n'
        'quantisation = "Q4_1"\ncontext_length = 512\nlicence = "MIT"\nsize_mb = 1\nram_mb = 10\n'
        f'source = {{ path = "{broken}" }}\n'
    )
    result = run("app", "--self-test")
    assert result.returncode == 1
    assert "self-test failed:" in result.stderr and "broken.gguf is not a GGUF file" in result.stderr


@pytest.mark.slow
def test_bench_startup_prints_its_ratios():
    """Slow: its probe is a fresh `understudy` process, which loads the real default model."""
    result = run("bench", "startup", "--json", "--rounds", "1")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for key in ("bare_window_s", "window_shown_s", "model_ready_s", "window_ratio", "model_ready_ratio"):
        assert figures[key] > 0, key


def test_without_a_display_the_app_says_what_to_do_instead_of_crashing():
    result = run_understudy(QT_QPA_PLATFORM="", DISPLAY="", WAYLAND_DISPLAY="")
    assert result.returncode == 1
    assert "no display" in result.stderr and "understudy chat" in result.stderr
