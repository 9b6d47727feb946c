"""Typed tuning records with plausible figures, for tests that need an evaluated adapter or a finished
job without running one."""

from __future__ import annotations

from engine.tuning.evaluation import AdapterEvaluation, GateDecision, GateFigures, GeneralFigures, TaskFigures
from engine.tuning.events import TuneResult

FIGURES = GateFigures(
    TaskFigures(base=0.2, candidate=0.9, active=None, examples=10),
    GeneralFigures(base=0.97, candidate=0.94, tolerance=0.1, items=35),
)


def gated(
    promote: bool, reasons: list[str] | None = None, figures: GateFigures = FIGURES
) -> AdapterEvaluation:
    """An evaluation whose gate decided ``promote`` (the contenders' own scores left out)."""
    return AdapterEvaluation(gate=GateDecision(promote, reasons or [], figures))


def tune_result(adapter_id: int = 4, status: str = "active", task_id: int = 1) -> TuneResult:
    """What a job that made adapter ``adapter_id`` for ``task_id`` returns."""
    return TuneResult(
        task_id=task_id,
        dataset_id=1,
        adapter_id=adapter_id,
        base_model_id="smollm2-135m-instruct",
        status=status,
        promoted=status == "active",
        reasons=["task: 90.0% beats the base's 20.0%"],
        figures=FIGURES,
    )
