from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine import catalog
from engine.errors import CatalogError, ModelDownloadError, ModelNotFoundError


def write_catalog(folder: Path, body: str, default: str = "tiny") -> Path:
    path = folder / "catalog.toml"
    path.write_text(f'default_generalist = "{default}"\n' + textwrap.dedent(body))
    return path


def load(path: Path) -> catalog.Catalog:
    return catalog.load_catalog(shipped=path, user=path.parent / "no-overrides.toml")


def test_shipped_catalog_has_the_three_packaged_models_and_hub_models(model_catalog):
    ids = {entry.id for entry in model_catalog}
    assert {"smollm2-135m-instruct", "gemma3-270m-base", "all-minilm-l6-v2"} <= ids
    assert model_catalog.default_generalist == "smollm2-135m-instruct"
    roles = {entry.id: entry.role for entry in model_catalog}
    assert roles["gemma3-270m-base"] == "specialist-base"
    assert roles["all-minilm-l6-v2"] == "embedder"
    hub = [entry for entry in model_catalog if entry.source.kind == "hub"]
    assert len(hub) >= 5
    assert all(entry.source.hub_repo and entry.source.hub_file.endswith(".gguf") for entry in hub)


def test_default_generalist_is_installed_and_verifies_against_the_package_record(model_catalog):
    entry = model_catalog.get(None)
    assert catalog.is_installed(entry)
    path = catalog.locate(entry)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert len(catalog.verify(entry)) == 64


def test_gemma_is_assembled_once_into_the_data_dir_with_its_checksum(model_catalog, understudy_home):
    entry = model_catalog.get("gemma3-270m-base")
    path = catalog.locate(entry)
    assert path.is_relative_to(understudy_home)
    assert catalog.sha256_of(path) == entry.source.sha256
    modified = path.stat().st_mtime_ns
    assert catalog.locate(entry) == path
    assert path.stat().st_mtime_ns == modified


def test_assembly_with_a_wrong_checksum_fails_and_leaves_nothing(tmp_path, model_catalog, entry_toml):
    shipped = model_catalog.get("gemma3-270m-base").source
    path = write_catalog(
        tmp_path,
        entry_toml()
        + f"""
        [models.bad-gemma]
        name = "Gemma"
        family = "gemma3"
        role = "specialist-base"
        backend = "llama_cpp"
        quantisation = "Q4_K_M"
        context_length = 512
        licence = "Gemma"
        size_mb = 242
        ram_mb = 600
        [models.bad-gemma.source]
        package = "{shipped.package}"
        assemble = "{shipped.assemble}"
        file = "g.gguf"
        sha256 = "{"0" * 64}"
        """,
    )
    entry = load(path).get("bad-gemma")
    with pytest.raises(ModelNotFoundError, match="bad-gemma.*sha256"):
        catalog.locate(entry)
    assert list((catalog.paths.models_dir() / "bad-gemma").iterdir()) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('licence = "MIT"', 'licence = "MIT"\ncolour = "red"'), r"model 'tiny': unknown field\(s\) colour"),
        (('name = "Tiny"\n', ""), r"model 'tiny': field 'name' is missing"),
        (
            ("context_length = 512", 'context_length = "big"'),
            r"model 'tiny': field 'context_length' must be int",
        ),
        (
            ("context_length = 512", "context_length = 0"),
            r"model 'tiny': field 'context_length' must be positive",
        ),
        (('role = "generalist"', 'role = "oracle"'), r"model 'tiny': field 'role' is 'oracle'"),
        (('backend = "llama_cpp"', 'backend = "tensorrt"'), r"model 'tiny': field 'backend' is 'tensorrt'"),
        (
            (
                'source = { path = "/nowhere/tiny.gguf" }',
                'source = { path = "/a", hub_repo = "b/c", hub_file = "d" }',
            ),
            r"model 'tiny': field 'source' needs exactly one of",
        ),
        (
            ('source = { path = "/nowhere/tiny.gguf" }', 'source = { hub_repo = "b/c" }'),
            r"model 'tiny': field 'source.hub_file' is missing",
        ),
        (
            ('source = { path = "/nowhere/tiny.gguf" }', 'source = { path = "/a", sha256 = "abc" }'),
            r"model 'tiny': field 'source.sha256' must be 64 hexadecimal digits",
        ),
        (
            ('source = { path = "/nowhere/tiny.gguf" }', 'source = { path = "/a", mirror = "x" }'),
            r"model 'tiny': unknown field\(s\) source.mirror",
        ),
    ],
)
def test_broken_entries_fail_naming_the_entry_and_the_field(tmp_path, change, message, entry_toml):
    old, new = change
    assert old in entry_toml()
    path = write_catalog(tmp_path, entry_toml().replace(old, new))
    with pytest.raises(CatalogError, match=message):
        load(path)


def test_invalid_toml_and_bad_default_are_clear(tmp_path, entry_toml):
    broken = tmp_path / "broken.toml"
    broken.write_text("[models.tiny\nname=")
    with pytest.raises(CatalogError, match="broken.toml is not valid TOML"):
        load(broken)
    with pytest.raises(CatalogError, match="default_generalist 'missing'"):
        load(write_catalog(tmp_path, entry_toml(), default="missing"))


def test_unknown_model_id_lists_the_known_ones(model_catalog):
    with pytest.raises(CatalogError, match="no model 'gpt-9'.*smollm2-135m-instruct"):
        model_catalog.get("gpt-9")


def test_user_overrides_in_the_data_dir_add_and_replace_entries(tmp_path, understudy_home, entry_toml):
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    understudy_home.mkdir(parents=True, exist_ok=True)
    (understudy_home / "models.toml").write_text(
        'default_generalist = "mine"\n'
        + entry_toml().replace("[models.tiny]", "[models.mine]").replace("/nowhere/tiny.gguf", str(gguf))
    )
    merged = catalog.load_catalog()
    assert merged.default_generalist == "mine"
    assert catalog.locate(merged.get(None)) == gguf
    assert "smollm2-135m-instruct" in merged.entries


def test_a_missing_local_file_names_the_file_and_what_to_do(tmp_path, entry_toml):
    entry = load(write_catalog(tmp_path, entry_toml())).get("tiny")
    assert not catalog.is_installed(entry)
    with pytest.raises(ModelNotFoundError, match=r"/nowhere/tiny.gguf does not exist; fix source.path"):
        catalog.locate(entry)


def test_a_path_entry_with_a_wrong_checksum_fails_verification(tmp_path, entry_toml):
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF and more")
    body = entry_toml().replace(
        '{ path = "/nowhere/tiny.gguf" }', f'{{ path = "{gguf}", sha256 = "{"a" * 64}" }}'
    )
    entry = load(write_catalog(tmp_path, body)).get("tiny")
    with pytest.raises(ModelNotFoundError, match="corrupt or was changed"):
        catalog.verify(entry)


def test_a_hub_model_not_downloaded_says_how_to_get_it(model_catalog):
    entry = model_catalog.get("qwen2.5-1.5b-instruct")
    assert not catalog.is_installed(entry)
    with pytest.raises(ModelNotFoundError, match="understudy models download qwen2.5-1.5b-instruct"):
        catalog.locate(entry)


def test_downloading_offline_fails_with_a_way_forward(model_catalog):
    with pytest.raises(ModelDownloadError, match="offline.*source.path"):
        catalog.download(model_catalog.get("qwen2.5-0.5b-instruct"))


def test_fit_hints_follow_ram_and_size(model_catalog):
    small = model_catalog.get("smollm2-135m-instruct")
    big = model_catalog.get("gemma3-4b-it")
    assert catalog.fit_hint(small, total_ram_mb=8000, available_ram_mb=4000, gpu=False) == "fits"
    assert catalog.fit_hint(big, total_ram_mb=4000, available_ram_mb=3000, gpu=False) == "won't fit"
    assert catalog.fit_hint(big, total_ram_mb=16000, available_ram_mb=2000, gpu=False) == "slow"
