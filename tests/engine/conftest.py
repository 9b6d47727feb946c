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
