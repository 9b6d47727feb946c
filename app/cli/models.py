"""`understudy models`: the catalog, where the weights are, checksums and hub downloads."""

from __future__ import annotations

import click

from app.cli.common import emit_json


@click.group()
def models() -> None:
    """The model catalog: list, verify, locate and download models."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model.")
def models_list(as_json: bool) -> None:
    """Every model in the catalog, whether it is installed, and whether it fits this machine."""
    import psutil

    from engine import catalog
    from engine.backends.llama_cpp import gpu_offload_supported
    from engine.settings import load_settings

    model_catalog = catalog.load_catalog()
    default_model = load_settings().default_model or model_catalog.default_generalist
    memory = psutil.virtual_memory()
    gpu = gpu_offload_supported()
    for entry in model_catalog:
        record = {
            "id": entry.id,
            "name": entry.name,
            "role": entry.role,
            "family": entry.family,
            "backend": entry.backend,
            "quantisation": entry.quantisation,
            "context_length": entry.context_length,
            "size_mb": entry.size_mb,
            "ram_mb": entry.ram_mb,
            "licence": entry.licence,
            "source": entry.source.describe(),
            "installed": catalog.is_installed(entry),
            "default": entry.id == default_model,
            "fit": catalog.fit_hint(entry, memory.total // 2**20, memory.available // 2**20, gpu),
        }
        if as_json:
            emit_json(record)
        else:
            marks = ("*" if record["default"] else " ") + ("i" if record["installed"] else " ")
            click.echo(
                f"{marks} {entry.id:<26} {entry.role:<16} {entry.size_mb:>6} MB  "
                f"{record['fit']:<9}  {entry.source.describe()}"
            )
    if not as_json:
        click.echo("(* default generalist, i installed)", err=True)


@models.command("verify")
@click.argument("model_id")
def models_verify(model_id: str) -> None:
    """Check MODEL_ID's weights against their known sha256."""
    from engine import catalog

    entry = catalog.load_catalog().get(model_id)
    digest = catalog.verify(entry)
    click.echo(f"{entry.id}: OK sha256 {digest}")


@models.command("path")
@click.argument("model_id")
def models_path(model_id: str) -> None:
    """Print where MODEL_ID's weights are (assembling them into the data dir if needed)."""
    from engine import catalog

    click.echo(str(catalog.locate(catalog.load_catalog().get(model_id))))


@models.command("download")
@click.argument("model_id")
@click.option("--endpoint", help="A hub mirror (default: HF_ENDPOINT or huggingface.co).")
def models_download(model_id: str, endpoint: str | None) -> None:
    """Download MODEL_ID from the hub into the data dir (resumes a partial download)."""
    from engine import catalog

    entry = catalog.load_catalog().get(model_id)
    with click.progressbar(length=entry.size_mb * 2**20, label=f"Downloading {entry.id}") as bar:

        def progress(done: int, total: int) -> None:
            if total:
                bar.length = total
            bar.update(done - bar.pos)

        target = catalog.download(entry, progress, endpoint=endpoint)
    click.echo(str(target))
