"""`understudy bench`: every speed, memory and accuracy measurement, printed as ratios side by side."""

from __future__ import annotations

import click

from app.cli.common import print_figures


@click.group()
def bench() -> None:
    """Benchmarks that print ratios measured side by side in one run."""


@bench.command("decode")
@click.option("-m", "--model", "model_id", help="Model ID (default: the default generalist).")
@click.option("--rounds", type=click.IntRange(1), default=4, show_default=True)
@click.option("--max-tokens", type=click.IntRange(8), default=128, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_decode(model_id: str | None, rounds: int, max_tokens: int, as_json: bool) -> None:
    """Raw llama-cpp-python vs Understudy's backend plus logging: decode speed, ttft, logging cost."""
    from engine.bench.decode import bench_decode as run

    print_figures(run(model_id=model_id, rounds=rounds, max_tokens=max_tokens), as_json)


@bench.command("serve")
@click.option("--rounds", type=click.IntRange(1), default=4, show_default=True)
@click.option("--max-tokens", type=click.IntRange(8), default=64, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_serve(rounds: int, max_tokens: int, as_json: bool) -> None:
    """The gateway over HTTP vs in process: decode speed, ttft, 8 concurrent clients, the router's share."""
    from engine.bench.serve import bench_serve as run

    print_figures(run(rounds=rounds, max_tokens=max_tokens), as_json)


@bench.command("tools")
@click.option("-m", "--model", "model_id", help="Model ID (default: the default generalist).")
@click.option("--limit", type=click.IntRange(1), help="Only the first N labelled requests.")
@click.option("--json", "as_json", is_flag=True)
def bench_tools(model_id: str | None, limit: int | None, as_json: bool) -> None:
    """Tool choice and argument accuracy on the labelled requests, with and without the grammar."""
    from engine.bench.tools import bench_tools as run

    print_figures(run(model_id=model_id, limit=limit), as_json)


@bench.command("train")
@click.option("-m", "--model", "model_id", help="Base model ID (default: the default generalist).")
@click.option("--examples", type=click.IntRange(2), default=32, show_default=True)
@click.option("--rounds", type=click.IntRange(1), default=2, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_train(model_id: str | None, examples: int, rounds: int, as_json: bool) -> None:
    """LoRA training tokens/s: the packed trainer against a padded loop, same model and examples."""
    from engine.bench.train import bench_train as run

    print_figures(run(model_id=model_id, examples=examples, rounds=rounds), as_json)


@bench.command("swap")
@click.option("-m", "--model", "model_id", help="Model ID (default: the default generalist).")
@click.option("--rounds", type=click.IntRange(1), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_swap(model_id: str | None, rounds: int, as_json: bool) -> None:
    """Switching a LoRA adapter on the loaded model vs reloading the model (target ratio <= 0.1)."""
    from engine.bench.swap import bench_swap as run

    print_figures(run(model_id=model_id, rounds=rounds), as_json)


@bench.command("redact")
@click.option("--json", "as_json", is_flag=True)
def bench_redact(as_json: bool) -> None:
    """Precision and recall per type on the labelled set shipped in resources/."""
    from engine.bench.redact import bench_redact as run

    print_figures(run(), as_json)


@bench.command("route")
@click.option("--decisions", type=click.IntRange(1), default=500, show_default=True)
@click.option("--turns", type=click.IntRange(1), default=3, show_default=True, help="Real turns for ttft.")
@click.option("-m", "--model", "model_id", help="Model ID for the turns (default: the default generalist).")
@click.option("--encoder", type=click.Choice(["static-minilm-l6-v2-pca256", "all-MiniLM-L6-v2"]))
@click.option("--json", "as_json", is_flag=True)
def bench_route(decisions: int, turns: int, model_id: str | None, encoder: str | None, as_json: bool) -> None:
    """Routing decision time (p50/p95, warm) against a real turn's time to first token, on the sample log."""
    from engine.bench.route import bench_route as run

    print_figures(run(decisions=decisions, turns=turns, model_id=model_id, encoder_name=encoder), as_json)


@bench.command("discover")
@click.option("--encoder", type=click.Choice(["static-minilm-l6-v2-pca256", "all-MiniLM-L6-v2"]))
@click.option("--json", "as_json", is_flag=True)
def bench_discover(encoder: str | None, as_json: bool) -> None:
    """Discovery's purity and outliers, and held-out placement, on the shipped synthetic logs."""
    from engine.bench.discover import bench_discover as run

    print_figures(run(encoder_name=encoder), as_json)


@bench.command("loop")
@click.option("--tasks", type=click.IntRange(1, 3), default=3, show_default=True, help="Synthetic tasks.")
@click.option(
    "--requests", type=click.IntRange(10), default=200, show_default=True, help="Teacher answers per task."
)
@click.option("--fresh", type=click.IntRange(1), default=60, show_default=True, help="New requests per task.")
@click.option("--steps", type=click.IntRange(1), help="Training steps per job (default: the product's job).")
@click.option("--json", "as_json", is_flag=True)
def bench_loop(tasks: int, requests: int, fresh: int, steps: int | None, as_json: bool) -> None:
    """The loop end to end in a scratch data dir: teacher log, discovery, tuning, routed answers."""
    from engine.bench.loop import bench_loop as run

    print_figures(run(tasks=tasks, requests=requests, fresh=fresh, steps=steps), as_json)
