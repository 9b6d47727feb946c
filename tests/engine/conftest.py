from __future__ import annotations

import pytest

from engine import backends, catalog


@pytest.fixture(scope="session")
def model_catalog() -> catalog.Catalog:
    return catalog.load_catalog(user=catalog.shipped_catalog_path())


@pytest.fixture(scope="session")
def smollm2(model_catalog) -> backends.Backend:
    """The real default generalist, loaded once for the whole session and reused by every test."""
    return backends.load(model_catalog.get("smollm2-135m-instruct"))


def _entry_toml(model_id: str = "tiny", source: str = '{ path = "/nowhere/tiny.gguf" }') -> str:
    return f"""
[models.{model_id}]
name = "Tiny"
family = "llama"
role = "generalist"
backend = "llama_cpp"
quantisation = "Q4_1"
context_length = 512
licence = "MIT"
size_mb = 1
ram_mb = 10
source = {source}
"""


@pytest.fixture
def entry_toml():
    """Text of one valid generalist catalog entry, with the ID and source a test needs."""
    return _entry_toml
