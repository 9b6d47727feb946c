"""The architecture's rules, checked by machines: engine stays Qt-free and start-up stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HEAVY = ("llama_cpp", "torch", "peft", "transformers", "onnxruntime_genai", "sentence_transformers")


def test_import_linter_contracts_hold():
    result = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_importing_the_engine_and_the_cli_loads_no_heavy_library_and_no_qt():
    code = (
        "import sys, app.main, engine.agent, engine.catalog, engine.store, engine.bench.decode, "
        "engine.backends.llama_cpp, engine.plugins; engine.plugins.backend_names(); "
        f"print(sorted(m for m in {(*HEAVY, 'PySide6')!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_ruff_is_clean():
    result = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
