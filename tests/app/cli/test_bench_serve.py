"""`understudy bench serve` on the real default model prints every figure it promises."""

from __future__ import annotations

import json

import pytest
from understudy_command import run_understudy


@pytest.mark.slow
def test_bench_serve_prints_its_figures():
    result = run_understudy("bench", "serve", "--json", "--rounds", "2", "--max-tokens", "16")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for key in (
        "http_tok_s",
        "inprocess_tok_s",
        "ratio",
        "ttft_ratio",
        "concurrent_p50_ms",
        "concurrent_p95_ms",
        "router_share_of_request",
    ):
        assert key in figures, key
    assert figures["ratio"] > 0 and figures["ttft_ratio"] > 0
