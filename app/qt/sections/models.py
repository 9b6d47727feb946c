"""The Models section: the catalog as a table, with verify, download and set-as-default.

Whether a model is installed and whether it fits this machine take disk and hardware look-ups, and
verifying or downloading takes minutes, so all of it runs as background jobs; the table is filled when
their results come back and the window never waits on them.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.qt.context import AppContext
from app.qt.workers import run_in_background
from engine import catalog
from engine.backends.llama_cpp import gpu_offload_supported
from engine.catalog import Catalog, FitHint, ModelEntry
from engine.errors import ModelDownloadError

COLUMNS = (
    "Name",
    "ID",
    "Role",
    "Status",
    "Fit here",
    "Default",
    "Size (MB)",
    "RAM needed (MB)",
    "Family",
    "Quantisation",
    "Source",
)
ID_COLUMN = COLUMNS.index("ID")
NUMBER_COLUMNS = frozenset({COLUMNS.index("Size (MB)"), COLUMNS.index("RAM needed (MB)")})
INSTALLED = "Installed"
DEFAULT_MARK = "Default"
PROGRESS_STEPS = 1000  # QProgressBar holds 32-bit ints; model files can be larger than 2 GB
_BYTES_PER_MB = 1024 * 1024


@dataclass(frozen=True)
class ModelRow:
    """One catalog entry with what the disk and the hardware say about it."""

    entry: ModelEntry
    installed: bool
    fit: FitHint


@dataclass(frozen=True)
class CatalogScan:
    """Every row plus the machine they were judged against (shown so the fit hints make sense)."""

    rows: tuple[ModelRow, ...]
    total_ram_mb: int
    available_ram_mb: int
    gpu: bool


def scan_catalog(models: Catalog) -> CatalogScan:
    """Check each entry's weights on disk and how it fits here (runs in a background job)."""
    memory = psutil.virtual_memory()
    total_ram_mb = memory.total // _BYTES_PER_MB
    available_ram_mb = memory.available // _BYTES_PER_MB
    gpu = gpu_offload_supported()
    rows = tuple(
        ModelRow(
            entry=entry,
            installed=catalog.is_installed(entry),
            fit=catalog.fit_hint(entry, total_ram_mb, available_ram_mb, gpu),
        )
        for entry in models
    )
    return CatalogScan(rows, total_ram_mb, available_ram_mb, gpu)


class _DownloadCancelled(Exception):
    """Raised from the progress callback to stop a download the user cancelled."""


def _download_weights(
    entry: ModelEntry, cancel: threading.Event, report_progress: Callable[[object], None]
) -> Path | None:
    """Download ``entry``; None when the user cancelled (which is not an error)."""

    def forward_progress(done_bytes: int, total_bytes: int) -> None:
        if cancel.is_set():
            raise _DownloadCancelled
        report_progress((done_bytes, total_bytes))

    try:
        return catalog.download(entry, forward_progress)
    except ModelDownloadError as error:
        # The engine wraps whatever the hub client raised, our cancellation included.
        if isinstance(error.__cause__, _DownloadCancelled):
            return None
        raise


def _megabytes(byte_count: int) -> str:
    return f"{byte_count / _BYTES_PER_MB:,.0f}"


class QtModelsSection(QWidget):
    """Shows every model the app knows, whether it is here, whether it fits, and which is the default."""

    title = "Models"

    def __init__(self, context: AppContext, parent: QWidget | None = None):
        super().__init__(parent)
        self._context = context
        self._rows: dict[str, ModelRow] = {}
        self._scan_generation = 0
        self._verifying: ModelEntry | None = None
        self._downloading: ModelEntry | None = None
        self._cancel_download = threading.Event()

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setAccessibleName("Models")
        self.table.setAccessibleDescription(
            "Every model in the catalog: whether it is installed, whether it fits this computer, "
            "and which one chat uses by default"
        )
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._on_selection_changed)

        self.machine_label = QLabel("Checking which models are installed…")
        self.machine_label.setAccessibleName("Catalog summary")

        self.verify_button = QPushButton("Verify")
        self.verify_button.setAccessibleName("Verify the selected model's checksum")
        self.verify_button.clicked.connect(self._on_verify_clicked)
        self.download_button = QPushButton("Download")
        self.download_button.setAccessibleName("Download the selected model")
        self.download_button.clicked.connect(self._on_download_clicked)
        self.set_default_button = QPushButton("Set as default")
        self.set_default_button.setAccessibleName("Make the selected model the default for chat")
        self.set_default_button.clicked.connect(self._on_set_default_clicked)

        self.activity_label = QLabel()
        self.activity_label.setAccessibleName("What is running")
        self.download_progress = QProgressBar()
        self.download_progress.setAccessibleName("Download progress")
        self.cancel_download_button = QPushButton("Cancel")
        self.cancel_download_button.setAccessibleName("Cancel the download")
        self.cancel_download_button.clicked.connect(self._on_cancel_download_clicked)

        buttons = QHBoxLayout()
        buttons.addWidget(self.verify_button)
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.set_default_button)
        buttons.addStretch(1)
        activity = QHBoxLayout()
        activity.addWidget(self.activity_label)
        activity.addWidget(self.download_progress, 1)
        activity.addWidget(self.cancel_download_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.machine_label)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addLayout(activity)

        context.catalog_changed.connect(self._on_catalog_changed)
        context.settings_changed.connect(self._on_settings_changed)
        self._update_activity()
        self._start_scan()

    # Reading the catalog ---------------------------------------------------------------------------

    def _start_scan(self) -> None:
        """Rescan in the background; a result that a newer scan has overtaken is dropped."""
        self._scan_generation += 1
        generation = self._scan_generation
        models = self._context.catalog
        run_in_background(
            lambda: (generation, scan_catalog(models)), self._on_scan_finished, self._context.notify_error
        )

    def _on_scan_finished(self, result: tuple[int, CatalogScan]) -> None:
        generation, scan = result
        if generation != self._scan_generation:
            return
        self._rows = {row.entry.id: row for row in scan.rows}
        installed = sum(row.installed for row in scan.rows)
        gpu = "GPU offload available" if scan.gpu else "no GPU offload"
        self.machine_label.setText(
            f"{len(scan.rows)} models, {installed} installed. This computer: "
            f"{scan.total_ram_mb:,} MB RAM ({scan.available_ram_mb:,} MB free), {gpu}."
        )
        self._fill_table()

    def _on_catalog_changed(self, _catalog: Catalog) -> None:
        self._start_scan()

    def _on_settings_changed(self, _settings: object) -> None:
        # Only the default mark depends on settings, and the rows we have already know the rest.
        self._fill_table()

    def _default_model_id(self) -> str:
        return self._context.settings.default_model or self._context.catalog.default_generalist

    def _fill_table(self) -> None:
        """Show the scanned rows, keeping the selection on the same model."""
        selected = self._selected_row()
        default_id = self._default_model_id()
        self.table.clearSelection()
        self.table.setRowCount(len(self._rows))
        for row_index, row in enumerate(self._rows.values()):
            entry = row.entry
            cells = (
                entry.name,
                entry.id,
                entry.role,
                INSTALLED if row.installed else "Available",
                row.fit,
                DEFAULT_MARK if entry.id == default_id else "",
                f"{entry.size_mb:,}",
                f"{entry.ram_mb:,}",
                entry.family,
                entry.quantisation,
                entry.source.describe(),
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column in NUMBER_COLUMNS:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row_index, column, item)
            if selected is not None and entry.id == selected.entry.id:
                self.table.selectRow(row_index)
        self._update_buttons()

    def _selected_row(self) -> ModelRow | None:
        selected = self.table.selectedItems()
        if not selected:
            return None
        id_item = self.table.item(selected[0].row(), ID_COLUMN)
        return self._rows.get(id_item.text()) if id_item is not None else None

    def _on_selection_changed(self) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        row = self._selected_row()
        self.verify_button.setEnabled(row is not None and row.installed and self._verifying is None)
        self.download_button.setEnabled(
            row is not None
            and row.entry.source.kind == "hub"
            and not row.installed
            and self._downloading is None
        )
        self.set_default_button.setEnabled(
            row is not None and row.entry.role == "generalist" and row.entry.id != self._default_model_id()
        )

    def _update_activity(self) -> None:
        """Say what is running and show the download controls only while a download runs."""
        running = []
        if self._verifying is not None:
            running.append(f"Verifying {self._verifying.name}…")
        if self._downloading is not None:
            stopping = self._cancel_download.is_set()
            running.append(
                f"{'Stopping the download of' if stopping else 'Downloading'} {self._downloading.name}…"
            )
        self.activity_label.setText("  ".join(running))
        self.download_progress.setVisible(self._downloading is not None)
        self.cancel_download_button.setVisible(self._downloading is not None)
        self.cancel_download_button.setEnabled(not self._cancel_download.is_set())
        self._update_buttons()

    # Verify ----------------------------------------------------------------------------------------

    def _on_verify_clicked(self) -> None:
        row = self._selected_row()
        if row is None:
            return
        self._verifying = row.entry
        self._update_activity()
        run_in_background(
            functools.partial(catalog.verify, row.entry), self._on_verify_finished, self._on_verify_failed
        )

    def _on_verify_finished(self, sha256: str) -> None:
        entry = self._end_verify()
        self._context.notify_info(f"{entry.name}: the weights are intact (sha256 {sha256}).")

    def _on_verify_failed(self, message: str) -> None:
        self._end_verify()
        self._context.notify_error(message)

    def _end_verify(self) -> ModelEntry:
        entry, self._verifying = self._verifying, None
        self._update_activity()
        return entry

    # Download --------------------------------------------------------------------------------------

    def _on_download_clicked(self) -> None:
        row = self._selected_row()
        if row is None:
            return
        self._downloading = row.entry
        self._cancel_download = threading.Event()
        self.download_progress.setRange(0, 0)  # busy until the first bytes tell us the size
        self.download_progress.resetFormat()
        self._update_activity()
        run_in_background(
            functools.partial(_download_weights, row.entry, self._cancel_download),
            self._on_download_finished,
            self._on_download_failed,
            self._on_download_progress,
            with_progress=True,
        )

    def _on_download_progress(self, progress: tuple[int, int]) -> None:
        done_bytes, total_bytes = progress
        if total_bytes <= 0:
            return
        self.download_progress.setRange(0, PROGRESS_STEPS)
        self.download_progress.setValue(done_bytes * PROGRESS_STEPS // total_bytes)
        self.download_progress.setFormat(f"{_megabytes(done_bytes)} of {_megabytes(total_bytes)} MB")

    def _on_cancel_download_clicked(self) -> None:
        self._cancel_download.set()
        self._update_activity()

    def _on_download_finished(self, path: Path | None) -> None:
        entry = self._end_download()
        if path is None:
            self._context.notify_info(f"Stopped downloading {entry.name}.")
            return
        self._context.notify_info(f"{entry.name} is downloaded to {path}.")
        self._start_scan()
        # Other sections (such as the chat's model list) learn of the new model from the reload.
        self._context.reload_catalog()

    def _on_download_failed(self, message: str) -> None:
        self._end_download()
        self._context.notify_error(message)

    def _end_download(self) -> ModelEntry:
        entry, self._downloading = self._downloading, None
        self._update_activity()
        return entry

    # Default ---------------------------------------------------------------------------------------

    def _on_set_default_clicked(self) -> None:
        row = self._selected_row()
        if row is not None:
            self._context.update_settings(default_model=row.entry.id)
