"""The replaceability report: per task, how much traffic it is, where it went, how the user liked it,
what answering it locally saved, and how much of it a local model can take over.

Definitions (every figure is computed from the log, nothing is sampled):

- requests: current, successful turns (not replaced by a regenerate or edit, not in a deleted
  conversation), imported history included; share = a task's requests / all requests.
- served: requests Understudy answered itself (not imported). Each went to the cloud (``turns.route =
  'cloud'``), a specialist (a turn with an adapter) or the generalist (any other local turn).
- proposed cloud: served requests for which the router proposed an escalation (target ``cloud``, or an
  escalation recorded on its decision).
- satisfaction: thumbs up / (thumbs up + thumbs down) over the task's rated requests.
- saved: what the locally served requests would have cost on the configured cloud model, from their
  model calls' token counts and the provider's prices per million tokens; spend: what the task's
  escalations did cost (``escalations.cost_usd``).
- replaceability: of the served requests, the share a local model answered with no thumbs down, no
  escalation other than a denied one, and no "user chose the cloud" outcome.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.store import Store

UNASSIGNED_LABEL = "(no task)"


@dataclass
class TaskReport:
    task_id: int | None  # None: requests no task holds
    label: str
    requests: int
    share: float
    imported: int
    served: int
    specialist: int
    generalist: int
    cloud: int
    proposed_cloud: int
    thumbs_up: int
    thumbs_down: int
    satisfaction: float | None
    local_prompt_tokens: int
    local_completion_tokens: int
    saved_usd: float | None
    spend_usd: float
    replaceable: int
    replaceability: float | None
    pin: str | None = None
    adapter_id: int | None = None
    keywords: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)


@dataclass
class DayReport:
    day: str
    requests: int  # served that day
    local: int
    local_share: float | None
    spend_usd: float
    saved_usd: float | None


@dataclass
class Report:
    generated_utc: str
    provider: dict[str, Any] | None  # the cloud model savings are priced against
    totals: dict[str, Any]
    tasks: list[TaskReport]
    days: list[DayReport]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_report(store: Store, provider_name: str | None = None) -> Report:
    """The report over the whole log, priced against ``provider_name`` (default: the one in use)."""
    from engine.discovery import list_tasks

    provider = _priced_provider(provider_name)
    turns = list(
        store.db.query(
            "SELECT turns.id, turns.created_utc, turns.route, turns.adapter_id, turns.cluster_id, "
            "turns.imported, feedback.rating, "
            "(SELECT COALESCE(SUM(prompt_tokens), 0) FROM model_calls WHERE turn_id = turns.id) "
            "  AS prompt_tokens, "
            "(SELECT COALESCE(SUM(completion_tokens), 0) FROM model_calls WHERE turn_id = turns.id) "
            "  AS completion_tokens, "
            "EXISTS (SELECT 1 FROM escalations WHERE escalations.turn_id = turns.id "
            "  AND escalations.status != 'denied') AS escalated, "
            "EXISTS (SELECT 1 FROM route_decisions WHERE route_decisions.turn_id = turns.id "
            "  AND (route_decisions.target = 'cloud' OR route_decisions.escalation_id IS NOT NULL)) "
            "  AS proposed, "
            "(SELECT outcome FROM route_decisions WHERE route_decisions.turn_id = turns.id "
            "  ORDER BY route_decisions.id DESC LIMIT 1) AS outcome "
            "FROM turns JOIN conversations ON conversations.id = turns.conversation_id "
            "LEFT JOIN feedback ON feedback.turn_id = turns.id "
            "WHERE turns.status = 'ok' AND turns.replaced_by IS NULL AND conversations.deleted_utc IS NULL "
            "ORDER BY turns.id"
        )
    )
    tasks = {task.id: task for task in list_tasks(store, include_retired=True)}
    spend_by_task, spend_by_day = _spend(store)
    total = len(turns)

    groups: dict[int | None, list[dict[str, Any]]] = {}
    for turn in turns:
        task_id = turn["cluster_id"] if turn["cluster_id"] in tasks else None
        groups.setdefault(task_id, []).append(turn)
    for task_id, task in tasks.items():
        if task.retired_utc is None:
            groups.setdefault(task_id, [])
    if spend_by_task.get(None):
        groups.setdefault(None, [])

    reports = []
    for task_id, members in groups.items():
        task = tasks.get(task_id)
        figures = _figures(members, provider)
        reports.append(
            TaskReport(
                task_id=task_id,
                label=task.label if task else UNASSIGNED_LABEL,
                requests=len(members),
                share=round(len(members) / total, 4) if total else 0.0,
                spend_usd=round(spend_by_task.get(task_id, 0.0), 6),
                pin=task.pin if task else None,
                adapter_id=task.adapter_id if task else None,
                keywords=task.keywords if task else [],
                examples=task.examples if task else [],
                **figures,
            )
        )
    reports.sort(key=lambda report: (report.task_id is None, -report.requests, report.task_id or 0))

    days = []
    by_day: dict[str, list[dict[str, Any]]] = {}
    for turn in turns:
        if not turn["imported"]:
            by_day.setdefault(turn["created_utc"][:10], []).append(turn)
    for day in sorted(set(by_day) | set(spend_by_day)):
        members = by_day.get(day, [])
        local = [turn for turn in members if turn["route"] != "cloud"]
        days.append(
            DayReport(
                day=day,
                requests=len(members),
                local=len(local),
                local_share=round(len(local) / len(members), 4) if members else None,
                spend_usd=round(spend_by_day.get(day, 0.0), 6),
                saved_usd=_round_money(_cost(local, provider)),
            )
        )

    overall = _figures(turns, provider)
    totals = {
        "requests": total,
        "tasks": sum(1 for report in reports if report.task_id is not None),
        "served": overall["served"],
        "imported": overall["imported"],
        "local_share": round((overall["specialist"] + overall["generalist"]) / overall["served"], 4)
        if overall["served"]
        else None,
        "specialist": overall["specialist"],
        "generalist": overall["generalist"],
        "cloud": overall["cloud"],
        "saved_usd": overall["saved_usd"],
        "spend_usd": round(sum(spend_by_task.values()), 6),
        "replaceable": overall["replaceable"],
        "replaceability": overall["replaceability"],
    }
    return Report(
        generated_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        provider=provider,
        totals=totals,
        tasks=reports,
        days=days,
    )


def _figures(turns: list[dict[str, Any]], provider: dict[str, Any] | None) -> dict[str, Any]:
    served = [turn for turn in turns if not turn["imported"]]
    cloud = [turn for turn in served if turn["route"] == "cloud"]
    local = [turn for turn in served if turn["route"] != "cloud"]
    specialist = [turn for turn in local if turn["adapter_id"] is not None or turn["route"] == "specialist"]
    up = sum(1 for turn in turns if turn["rating"] == 1)
    down = sum(1 for turn in turns if turn["rating"] == -1)
    replaceable = sum(
        1
        for turn in local
        if turn["rating"] != -1 and not turn["escalated"] and turn["outcome"] != "user_chose_cloud"
    )
    return {
        "imported": len(turns) - len(served),
        "served": len(served),
        "specialist": len(specialist),
        "generalist": len(local) - len(specialist),
        "cloud": len(cloud),
        "proposed_cloud": sum(1 for turn in served if turn["proposed"]),
        "thumbs_up": up,
        "thumbs_down": down,
        "satisfaction": round(up / (up + down), 4) if up + down else None,
        "local_prompt_tokens": sum(turn["prompt_tokens"] for turn in local),
        "local_completion_tokens": sum(turn["completion_tokens"] for turn in local),
        "saved_usd": _round_money(_cost(local, provider)),
        "replaceable": replaceable,
        "replaceability": round(replaceable / len(served), 4) if served else None,
    }


def _cost(turns: list[dict[str, Any]], provider: dict[str, Any] | None) -> float | None:
    if provider is None:
        return None
    prompt = sum(turn["prompt_tokens"] for turn in turns)
    completion = sum(turn["completion_tokens"] for turn in turns)
    return (prompt * provider["price_in_per_million"] + completion * provider["price_out_per_million"]) / 1e6


def _round_money(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _priced_provider(name: str | None) -> dict[str, Any] | None:
    """The cloud provider to price against, when it has both prices; None otherwise."""
    from engine.escalation import load_cloud_config

    config = load_cloud_config()
    wanted = name or config.active
    provider = config.providers.get(wanted) if wanted else None
    if provider is None or provider.price_in_per_million is None or provider.price_out_per_million is None:
        return None
    return asdict(provider)


def _spend(store: Store) -> tuple[dict[int | None, float], dict[str, float]]:
    """Escalation costs by task and by day. An escalation belongs to the task of the turn it was
    proposed for, else to the task its task type names (``task <id>``), else to the task of the cloud
    answer's turn; otherwise to no task."""
    by_task: dict[int | None, float] = {}
    by_day: dict[str, float] = {}
    for row in store.db.query(
        "SELECT escalations.cost_usd, escalations.task_type, COALESCE(escalations.sent_utc, "
        "escalations.created_utc) AS day, origin.cluster_id AS origin_task, "
        "(SELECT answer.cluster_id FROM turns AS answer WHERE answer.route = 'cloud' "
        "  AND answer.conversation_id = escalations.conversation_id "
        "  AND answer.user_text = escalations.user_text ORDER BY answer.id DESC LIMIT 1) AS answer_task "
        "FROM escalations LEFT JOIN turns AS origin ON origin.id = escalations.turn_id "
        "WHERE escalations.cost_usd IS NOT NULL"
    ):
        task_id = row["origin_task"]
        if task_id is None and row["task_type"].startswith("task ") and row["task_type"][5:].isdigit():
            task_id = int(row["task_type"][5:])
        if task_id is None:
            task_id = row["answer_task"]
        by_task[task_id] = by_task.get(task_id, 0.0) + row["cost_usd"]
        by_day[row["day"][:10]] = by_day.get(row["day"][:10], 0.0) + row["cost_usd"]
    return by_task, by_day


# Export -----------------------------------------------------------------------------------------


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"${value:.4f}"


def _pricing_note(report: Report) -> str:
    provider = report.provider
    if provider is None:
        return (
            "Savings are not priced: no cloud provider with prices is in use (set them with "
            "`understudy cloud add NAME --price-in USD --price-out USD`)."
        )
    return (
        f"Savings priced against {provider['name']} ({provider['model']}): "
        f"${provider['price_in_per_million']}/M input, ${provider['price_out_per_million']}/M output tokens."
    )


_COLUMNS = (
    "Task", "Requests", "Share", "Specialist", "Generalist", "Cloud", "Satisfaction", "Saved", "Spent",
    "Replaceable",
)  # fmt: skip


def _row(task: TaskReport) -> list[str]:
    label = task.label if task.task_id is None else f"#{task.task_id} {task.label}"
    return [
        label, str(task.requests), _percent(task.share), str(task.specialist), str(task.generalist),
        str(task.cloud), _percent(task.satisfaction), _money(task.saved_usd), _money(task.spend_usd),
        _percent(task.replaceability),
    ]  # fmt: skip


def _summary(report: Report) -> str:
    totals = report.totals
    return (
        f"Generated {report.generated_utc}. {totals['requests']} requests ({totals['imported']} imported), "
        f"{totals['tasks']} tasks; served locally: {_percent(totals['local_share'])}; "
        f"replaceable by a local model: {_percent(totals['replaceability'])}; "
        f"saved {_money(totals['saved_usd'])}, spent {_money(totals['spend_usd'])}."
    )


def to_markdown(report: Report) -> str:
    lines = [
        "# Understudy: what your tasks are and how much of them runs locally",
        "",
        _summary(report),
        "",
        _pricing_note(report),
        "",
        "| " + " | ".join(_COLUMNS) + " |",
        "|" + "---|" * len(_COLUMNS),
    ]
    for task in report.tasks:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in _row(task)) + " |")
    lines += ["", "## Examples", ""]
    for task in report.tasks:
        if task.examples:
            lines.append(
                f"- **#{task.task_id} {task.label}**: " + " · ".join(f"“{e}”" for e in task.examples)
            )
    lines += [
        "",
        "## By day",
        "",
        "| Day | Requests | Local share | Spent | Saved |",
        "|---|---|---|---|---|",
    ]
    for day in report.days:
        lines.append(
            f"| {day.day} | {day.requests} | {_percent(day.local_share)} | {_money(day.spend_usd)} | "
            f"{_money(day.saved_usd)} |"
        )
    lines += ["", _DEFINITIONS, ""]
    return "\n".join(lines)


_DEFINITIONS = (
    "Replaceable: the share of the requests Understudy served that a local model answered with no "
    "thumbs down, no escalation (other than a denied one) and no switch to the cloud by the user. Saved: "
    "what the locally answered requests would have cost on the cloud model, from their token counts."
)


def to_html(report: Report) -> str:
    """A self-contained page: the summary, the task table, examples and two charts by day."""
    escape = html.escape
    header = "".join(f"<th>{escape(column)}</th>" for column in _COLUMNS)
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in _row(task)) + "</tr>" for task in report.tasks
    )
    examples = "".join(
        f"<li><b>#{task.task_id} {escape(task.label)}</b>: "
        + " · ".join(f"“{escape(example)}”" for example in task.examples)
        + "</li>"
        for task in report.tasks
        if task.examples
    )
    share_chart = _bars([(day.day, day.local_share or 0.0) for day in report.days], "Local share by day", 1.0)
    spend_chart = _bars([(day.day, day.spend_usd) for day in report.days], "Cloud spend by day (USD)", None)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Understudy report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; max-width: 70rem; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: .3rem .6rem; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }} svg {{ margin: 1rem 2rem 0 0; }}
</style></head><body>
<h1>What your tasks are and how much of them runs locally</h1>
<p>{escape(_summary(report))}</p>
<p>{escape(_pricing_note(report))}</p>
<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>
<h2>Examples</h2><ul>{examples}</ul>
<h2>Over time</h2>{share_chart}{spend_chart}
<p><small>{escape(_DEFINITIONS)}</small></p>
</body></html>
"""


def _bars(points: list[tuple[str, float]], title: str, top: float | None) -> str:
    """A small bar chart as inline SVG (no script, no external file)."""
    width, height, gap = 360, 140, 2
    top = top or max((value for _, value in points), default=0.0) or 1.0
    bar = (width - gap * len(points)) / max(1, len(points))
    bars = "".join(
        f'<rect x="{index * (bar + gap):.1f}" y="{height - value / top * height:.1f}" width="{bar:.1f}" '
        f'height="{value / top * height:.1f}" fill="#4a7bd0">'
        f"<title>{html.escape(day)}: {value:.4g}</title></rect>"
        for index, (day, value) in enumerate(points)
    )
    return (
        f'<svg width="{width}" height="{height + 24}" role="img" aria-label="{html.escape(title)}">'
        f'<text x="0" y="{height + 18}" font-size="12">{html.escape(title)}</text>{bars}</svg>'
    )
