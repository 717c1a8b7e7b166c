"""A self-contained HTML report of a model's monitoring: one file, plots embedded as PNG.

Built from the checks stored in the metadata store, so it can be rendered
again at any time (``loopml monitor NAME --report PATH``) and shows history
across monitor runs: an overview of every window, then one section per window
with its drift score table and, for each feature, the reference and window
distributions side by side.
"""

from __future__ import annotations

import base64
import io
import itertools
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from loopml.monitoring.policy import DATA_DRIFT, ESTIMATED, PERFORMANCE, PREDICTION_DRIFT
from loopml.store.monitoring import CheckView

REFERENCE_COLOUR, CURRENT_COLOUR, ALERT_COLOUR = "#4C72B0", "#DD8452", "#C44E52"
DECISION, SCHEMA = "decision", "schema_skew"


def render_report(model_name: str, checks: Sequence[CheckView], *, detail_windows: int = 12) -> str:
    """The report as HTML text; the last ``detail_windows`` windows get per-feature plots."""
    windows = _group(checks)
    parts = [_head(model_name), _summary(model_name, windows)]
    if windows:
        parts.append(_overview(windows))
    for position, window in enumerate(windows):
        parts.append(_window_section(window, plots=position >= len(windows) - detail_windows))
    parts.append("</main></body></html>")
    return "\n".join(parts)


def write_report(path: Path, model_name: str, checks: Sequence[CheckView], **kwargs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(model_name, checks, **kwargs), encoding="utf-8")
    return path


def _group(checks: Sequence[CheckView]) -> list[dict[str, Any]]:
    """Checks of one window together, in window order (latest monitor run wins on repeats)."""
    windows: dict[tuple[datetime, datetime], dict[str, Any]] = {}
    for check in checks:
        key = (check.window_start, check.window_end)
        window = windows.setdefault(
            key,
            {
                "start": check.window_start,
                "end": check.window_end,
                "rows": check.rows,
                "version": check.model_version,
                "complete": check.complete,
                "kinds": {},
            },
        )
        window["kinds"][check.kind] = check
    ordered = sorted(windows.values(), key=lambda w: (w["end"], w["start"]))
    for number, window in enumerate(ordered):
        window["number"] = number
    return ordered


def _figures(window: dict[str, Any], kind: str) -> dict[str, Any]:
    check = window["kinds"].get(kind)
    return check.figures if check is not None else {}


def _status(window: dict[str, Any], kind: str) -> str:
    check = window["kinds"].get(kind)
    return check.status if check is not None else ""


def _head(model_name: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>loopml monitoring: {escape(model_name)}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  margin: 0; color: #222; background: #f6f7f9; }}
main {{ max-width: 1280px; margin: 0 auto; padding: 24px 32px 64px; }}
h1 {{ font-size: 26px; margin: 0 0 4px; }}
h2 {{ font-size: 20px; margin: 0 0 8px; }}
h3 {{ font-size: 15px; margin: 18px 0 8px; color: #444; }}
.muted {{ color: #666; font-size: 13px; }}
section {{ background: #fff; border: 1px solid #e3e5e8; border-radius: 8px;
  padding: 18px 22px; margin: 18px 0; }}
table {{ border-collapse: collapse; font-size: 13px; width: 100%; }}
th, td {{ text-align: left; padding: 5px 10px; border-bottom: 1px solid #eceef1; }}
th {{ background: #fafbfc; font-weight: 600; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.badge {{ display: inline-block; border-radius: 10px; padding: 1px 9px; font-size: 12px;
  font-weight: 600; margin-right: 6px; }}
.ok {{ background: #e6f4ea; color: #1e7b34; }}
.alert {{ background: #fde8e8; color: #b42318; }}
.info {{ background: #eef2fb; color: #2f4e9b; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(290px, 1fr));
  gap: 12px; }}
figure {{ margin: 0; border: 1px solid #eceef1; border-radius: 6px; padding: 6px; }}
figure.drifted {{ border-color: {ALERT_COLOUR}; box-shadow: 0 0 0 1px {ALERT_COLOUR} inset; }}
figure img {{ width: 100%; height: auto; display: block; }}
figcaption {{ font-size: 12px; color: #444; padding: 2px 4px 0; }}
ul.findings {{ margin: 6px 0 0 18px; padding: 0; font-size: 14px; }}
img.wide {{ width: 100%; max-width: 1200px; height: auto; }}
</style></head><body><main>"""


def _summary(model_name: str, windows: list[dict[str, Any]]) -> str:
    alerts = sum(_status(w, DECISION) == "alert" for w in windows)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if not windows:
        body = "<p>No monitoring checks are stored for this model yet.</p>"
    else:
        span = f"{_when(windows[0]['start'])} to {_when(windows[-1]['end'])}"
        body = (
            f'<p class="muted">{len(windows)} window(s), {span}; '
            f"{alerts} with alerts. Generated {generated}.</p>"
        )
    return f"<h1>Monitoring: {escape(model_name)}</h1>{body}"


def natural(name: str) -> tuple[Any, ...]:
    """Sort key that puts V2 before V10 (numbers in names compare as numbers)."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part.lower())
        for part in re.split(r"(\d+)", name)
        if part
    )


def _metric(windows: list[dict[str, Any]]) -> str:
    """The metric decay was judged by (stored with each decision), newest window's first."""
    for window in reversed(windows):
        metric = _figures(window, DECISION).get("metric")
        if metric:
            return str(metric)
    return "accuracy"


def _overview(windows: list[dict[str, Any]]) -> str:
    rows = []
    metric = _metric(windows)
    for window in windows:
        drift = _figures(window, DATA_DRIFT)
        performance = _figures(window, PERFORMANCE)
        estimated = _figures(window, ESTIMATED)
        decision = _figures(window, DECISION)
        judged = str(decision.get("metric") or metric)
        skew = _figures(window, SCHEMA)
        skewed = any(skew.get(k) for k in ("missing", "extra", "retyped"))
        rows.append(
            "<tr>"
            f'<td><a href="#window-{window["number"]}">{window["number"]}</a></td>'
            f"<td>{_when(window['start'])}</td><td class='num'>{window['rows']}</td>"
            f"<td>{escape(str(window['version'] or '-'))}</td>"
            f"<td class='num'>{_pct(drift.get('share'))}</td>"
            f"<td>{escape(', '.join(sorted(drift.get('drifted', []), key=natural)) or '-')}</td>"
            f"<td>{_badge('skew', 'alert') if skewed else '-'}</td>"
            f"<td class='num'>{_num(performance.get(judged))}</td>"
            f"<td class='num'>{_num(estimated.get(judged))}</td>"
            f"<td>{escape(action_text(decision))}</td></tr>"
        )
    table = (
        "<table><tr><th>window</th><th>start</th><th>rows</th><th>version</th>"
        "<th>drift share</th><th>drifted features</th><th>schema</th>"
        f"<th>{escape(metric)}</th><th>estimated {escape(metric)}</th><th>action</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    chart = _img(_overview_plot(windows), "drift share and performance over windows", "wide")
    return f'<section id="overview"><h2>Over all windows</h2>{chart}{table}</section>'


def action_text(decision: dict[str, Any]) -> str:
    """A window's action as ``loopml monitor`` prints it: ``ok`` when nothing was called for."""
    return str(decision.get("action") or "ok") if decision else "-"


def _window_section(window: dict[str, Any], *, plots: bool) -> str:
    number = window["number"]
    drift = _figures(window, DATA_DRIFT)
    decision = _figures(window, DECISION)
    alert = _status(window, DECISION) == "alert"
    badges = _badge("alert", "alert") if alert else _badge("ok", "ok")
    if not window["complete"]:
        badges += _badge("partial window", "info")
    findings = "".join(f"<li>{escape(m)}</li>" for m in decision.get("findings", []))
    action = decision.get("action")
    lines = [
        f'<section id="window-{number}" class="window">',
        f"<h2>Window {number} {badges}</h2>",
        f'<p class="muted">{_when(window["start"])} to {_when(window["end"])}, '
        f"{window['rows']} rows, model version {escape(str(window['version'] or '-'))}</p>",
    ]
    if findings:
        lines.append(f'<ul class="findings">{findings}</ul>')
    if action:
        lines.append(f"<p><b>Action:</b> {escape(action)}</p>")
    lines.append(_metrics_line(window))
    lines.append("<h3>Drift per feature</h3>" + _drift_table(drift.get("columns", [])))
    if plots:
        figures = []
        scores = {c["column"]: c for c in drift.get("columns", [])}
        for name, plot in sorted(drift.get("plots", {}).items(), key=lambda i: natural(i[0])):
            figures.append(_feature_figure(name, plot, scores.get(name), number))
        prediction = _figures(window, PREDICTION_DRIFT)
        if prediction.get("plot"):
            figures.append(_feature_figure("prediction", prediction["plot"], prediction, number))
        lines.append("<h3>Reference vs window</h3><div class='grid'>" + "".join(figures) + "</div>")
    lines.append("</section>")
    return "\n".join(lines)


def _metrics_line(window: dict[str, Any]) -> str:
    parts = []
    for kind, label in ((PERFORMANCE, "from labels"), (ESTIMATED, "estimated (CBPE)")):
        figures = _figures(window, kind)
        if figures:
            shown = ", ".join(
                f"{k} {_num(v)}" for k, v in figures.items() if k != "rows" and v is not None
            )
            rows = _num(figures.get("rows"))
            parts.append(f"<b>Performance {label}:</b> {escape(shown)} ({rows} rows)")
    skew = _figures(window, SCHEMA)
    if any(skew.get(k) for k in ("missing", "extra", "retyped")):
        parts.append(
            f"<b>Schema skew:</b> missing {escape(', '.join(skew.get('missing', [])) or '-')}; "
            f"extra {escape(', '.join(skew.get('extra', [])) or '-')}; "
            f"retyped {escape(', '.join(skew.get('retyped', {})) or '-')}"
        )
    return "".join(f"<p>{part}</p>" for part in parts)


def _drift_table(columns: list[dict[str, Any]]) -> str:
    rows = []
    for column in sorted(columns, key=lambda c: (not c["drifted"], natural(c["column"]))):
        verdict = _badge("drift", "alert") if column["drifted"] else _badge("ok", "ok")
        rows.append(
            f"<tr><td>{escape(column['column'])}</td><td>{escape(column['method'])}</td>"
            f"<td class='num'>{_num(column['score'])}</td>"
            f"<td class='num'>{_num(column['threshold'])}</td>"
            f"<td class='num'>{_num(column.get('error_bound'))}</td>"
            f"<td class='num'>{column.get('current_missing', 0)}</td><td>{verdict}</td></tr>"
        )
    return (
        "<table><tr><th>feature</th><th>test</th><th>score</th><th>threshold</th>"
        "<th>error bound</th><th>missing</th><th>verdict</th></tr>" + "".join(rows) + "</table>"
    )


def _feature_figure(
    name: str, plot: dict[str, Any], score: dict[str, Any] | None, number: int
) -> str:
    drifted = bool(score and score.get("drifted"))
    caption = escape(name)
    if score:
        caption += f" &middot; {escape(score['method'])} {_num(score['score'])}"
    image = _img(_distribution_plot(name, plot, drifted), f"{name}: reference vs window")
    css = "drifted" if drifted else ""
    return (
        f'<figure class="{css}" id="window-{number}-{escape(name)}">'
        f"{image}<figcaption>{caption}</figcaption></figure>"
    )


def _distribution_plot(name: str, plot: dict[str, Any], drifted: bool) -> bytes:
    figure = Figure(figsize=(3.6, 2.3), dpi=100)
    axes = figure.add_subplot()
    if plot.get("type") == "numeric":
        for side, colour in (("reference", REFERENCE_COLOUR), ("current", CURRENT_COLOUR)):
            edges = plot[side]["edges"]
            density = [d or 0.0 for d in plot[side]["density"]]
            if len(edges) >= 2:
                is_reference = side == "reference"
                axes.stairs(
                    density,
                    edges,
                    fill=is_reference,
                    alpha=0.45 if is_reference else 1.0,
                    color=colour,
                    linewidth=1.6,
                    label="reference" if is_reference else "window",
                )
        axes.set_ylabel("density", fontsize=8)
        bulk = plot["reference"]["edges"]
        if len(bulk) >= 2:
            axes.set_xlim(
                min(bulk[0], *plot["current"]["edges"][:1]),
                max(bulk[-1], *plot["current"]["edges"][-1:]),
            )
        linear_width = heavy_tail(plot["reference"]["edges"], plot["reference"]["density"])
        if linear_width is not None:  # amounts, counts: the bulk would be one bar at zero
            axes.set_xscale("symlog", linthresh=linear_width)
            axes.set_xlabel("symlog scale (heavy tail)", fontsize=7)
        else:
            axes.xaxis.set_major_locator(MaxNLocator(5))
            axes.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
    else:
        categories = [str(c)[:14] for c in plot.get("categories", [])]
        positions = range(len(categories))
        axes.bar(
            [p - 0.2 for p in positions],
            plot.get("reference", []),
            width=0.4,
            color=REFERENCE_COLOUR,
            alpha=0.8,
            label="reference",
        )
        axes.bar(
            [p + 0.2 for p in positions],
            plot.get("current", []),
            width=0.4,
            color=CURRENT_COLOUR,
            label="window",
        )
        axes.set_xticks(
            list(positions), categories, rotation=30 if len(categories) > 4 else 0, fontsize=7
        )
        axes.set_ylabel("share", fontsize=8)
    axes.set_title(name, fontsize=10, color=ALERT_COLOUR if drifted else "#222")
    axes.tick_params(labelsize=7)
    low, high = axes.get_ylim()
    axes.set_ylim(low, high * 1.3)  # room for the legend above the data
    axes.legend(fontsize=7, frameon=False, loc="upper right", ncols=2)
    for spine in ("top", "right"):
        axes.spines[spine].set_visible(False)
    figure.tight_layout()
    return _png(figure)


def heavy_tail(edges: list[float], density: list[float | None]) -> float | None:
    """The linear width of a symlog axis when a histogram's range dwarfs its middle half.

    On a linear axis a log-normal amount puts nearly all its mass in the
    first bin; ``None`` when the linear axis shows the shape well.
    """
    if len(edges) < 3:
        return None
    widths = [high - low for low, high in itertools.pairwise(edges)]
    mass = [(d or 0.0) * w for d, w in zip(density, widths, strict=False)]
    total = sum(mass)
    if total <= 0:
        return None

    def quantile(q: float) -> float:
        running = 0.0
        for (low, high), part in zip(itertools.pairwise(edges), mass, strict=False):
            if part and running + part >= q * total:
                return low + (high - low) * (q * total - running) / part
            running += part
        return edges[-1]

    low, median, high = quantile(0.25), quantile(0.5), quantile(0.75)
    spread = high - low
    if spread <= 0 or (edges[-1] - edges[0]) < 20 * spread:
        return None
    return max(spread, abs(median) / 10, 1e-9)


def _overview_plot(windows: list[dict[str, Any]]) -> bytes:
    numbers = [w["number"] for w in windows]
    figure = Figure(figsize=(11, 3.0), dpi=100)
    left, right = figure.subplots(1, 2)
    shares = [_figures(w, DATA_DRIFT).get("share") or 0.0 for w in windows]
    left.bar(
        numbers,
        shares,
        color=[
            ALERT_COLOUR if _status(w, DATA_DRIFT) == "alert" else REFERENCE_COLOUR for w in windows
        ],
    )
    threshold = next((_figures(w, DATA_DRIFT).get("share_threshold") for w in windows), None)
    if threshold is not None:
        left.axhline(threshold, color="#888", linestyle="--", linewidth=1, label="dataset drift")
        left.legend(fontsize=8, frameon=False)
    left.set_ylim(0, 1)
    left.set_title("share of drifted features", fontsize=10)
    left.set_xlabel("window", fontsize=9)
    metric = _metric(windows)
    for kind, label, style in ((PERFORMANCE, "from labels", "-o"), (ESTIMATED, "estimated", "--s")):
        points = [(w["number"], _figures(w, kind).get(metric)) for w in windows]
        points = [(n, v) for n, v in points if v is not None]
        if points:
            right.plot(
                [n for n, _ in points], [v for _, v in points], style, label=label, markersize=4
            )
    right.set_title(f"{metric} per window", fontsize=10)
    right.set_xlabel("window", fontsize=9)
    if right.lines:
        right.legend(fontsize=8, frameon=False)
    else:
        right.text(
            0.5,
            0.5,
            "no labels or probabilities yet",
            ha="center",
            va="center",
            transform=right.transAxes,
            color="#888",
        )
    for axes in (left, right):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        axes.set_xlim(numbers[0] - 0.6, numbers[-1] + 0.6)
        axes.tick_params(labelsize=8)
        for spine in ("top", "right"):
            axes.spines[spine].set_visible(False)
    figure.tight_layout()
    return _png(figure)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _img(png: bytes, alt: str, css: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="{css}" alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _badge(text: str, css: str) -> str:
    return f'<span class="badge {css}">{escape(text)}</span>'


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))
