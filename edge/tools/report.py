"""``report.html``: one self-contained page per replay that a city operator can read without help.

Everything on the page comes from what the agent itself held during the replay: the rules' zone
states (``CameraAnalytics.zone_states()``: the count each zone holds, the smoothed count its density
is computed from, level of service, bay occupancy), the events the agent built, and the feature
stage's occupancy grid (``CameraAnalytics.occupancy_total``: seconds of presence per grid cell,
summed over the replay). Nothing is re-derived here.

Charts are drawn with matplotlib when it is installed (``pip install edge[report]``: the field's
standard plotting library; never needed on a box). Without it the page still comes out, with the
plain cv2 pictures of ``edge.tools.plots`` and ``edge.tools.heatmap`` and the events as a table.
Pictures are embedded (base64 PNG for charts, JPEG for key frames): the file can be mailed alone.
"""

from __future__ import annotations

import base64
import html
import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config.zones import LineConfig, ZoneConfig
from edge.rules.context import fmt_duration
from edge.rules.crowd import LEVELS, LOS_TABLES
from edge.tools.draw import KIND_WORDS, LOS_WORDS, fmt_density
from edge.tools.heatmap import render_heatmap, smooth_upsample
from edge.tools.loops import LoopReport
from edge.tools.plots import PALETTE, ZoneSeries, render_timeseries

# Events an operator acts on, with the words the page uses for them. Periodic measurements
# (crowd_density, bike_bay_status, features) are in the charts, not in the list.
EVENT_WORDS: dict[str, str] = {
    "parking_violation": "parking violation",
    "bike_bay_overflow": "bike bay overflow",
    "dispatch_task": "dispatch task",
    "bike_outside_bay": "bike parked outside a bay",
    "blacklisted_bike": "blacklisted bike",
    "crowd_surge": "crowd surge",
    "camera_tamper": "camera tampering",
    "camera_status": "camera offline",
    "tamper": "enclosure door open",
    "line_crossing": "line crossing",
    "hardware_input": "PIR motion",
    "sensor_status": "sensor lost",
}
PERIODIC_KINDS = ("crowd_density", "bike_bay_status", "features", "device_health", "agent_status")
SEVERITY_ORDER = ("critical", "major", "minor", "info")


def plural(names: Sequence[str]) -> str:
    """``["person"]`` -> ``people``, ``["vehicle", "bicycle"]`` -> ``vehicles and bicycles``."""
    words = [{"person": "people", "bus": "buses", "any": "objects"}.get(n, n + "s") for n in names] or [
        "objects"
    ]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class ReportEvent:
    t: float  # video seconds
    kind: str
    phase: str
    zone_id: str | None
    severity: str
    reason: str
    incident_id: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class KeyFrame:
    t: float
    caption: str
    image: np.ndarray  # annotated BGR


@dataclass
class ReportData:
    camera_id: str
    source: str
    video_s: float
    frames: int
    wall_s: float
    model: str
    zones: Sequence[ZoneConfig]
    lines: Sequence[LineConfig]
    series: ZoneSeries  # count, count_smoothed, density, occupancy per zone (the rules' state)
    los: dict[str, list[tuple[float, str]]]  # crowd zone -> (t, level) samples
    events: list[ReportEvent]
    grid: np.ndarray | None  # seconds of presence per cell, summed over the replay
    grid_classes: Sequence[str]
    background: np.ndarray | None  # last frame with the zones drawn (BGR)
    key_frames: list[KeyFrame]
    area_m2: dict[str, float | None]
    los_bounds: dict[str, tuple[float, ...]]
    los_table: dict[str, str]
    loops: LoopReport | None = None  # the closed loop in figures (dispatch tasks, kerb violations)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M", time.localtime()))


# ------------------------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class Episode:
    kind: str
    zone_id: str | None
    start: float
    end: float | None  # None: still open when the recording ended
    severity: str
    reason: str
    phases: tuple[str, ...]


def episodes(events: Sequence[ReportEvent]) -> tuple[list[Episode], list[ReportEvent]]:
    """Start/update/end events folded into episodes (one per incident); instants returned apart."""
    by_incident: dict[str, list[ReportEvent]] = {}
    instants: list[ReportEvent] = []
    for e in events:
        if e.kind not in EVENT_WORDS:
            continue
        if e.phase == "instant":
            instants.append(e)
        else:
            by_incident.setdefault(e.incident_id or f"{e.kind}:{e.zone_id}", []).append(e)
    out: list[Episode] = []
    for evs in by_incident.values():
        evs.sort(key=lambda e: e.t)
        end = next((e.t for e in evs if e.phase == "end"), None)
        worst = min(
            evs, key=lambda e: SEVERITY_ORDER.index(e.severity) if e.severity in SEVERITY_ORDER else 9
        )
        first = evs[0]
        out.append(
            Episode(
                first.kind,
                first.zone_id,
                first.t,
                end,
                worst.severity,
                first.reason,
                tuple(e.phase for e in evs),
            )
        )
    out.sort(key=lambda ep: ep.start)
    return out, sorted(instants, key=lambda e: e.t)


def zone_rows(data: ReportData) -> list[dict[str, str]]:
    """One row per zone for the summary table, every figure from the rules' state."""
    rows: list[dict[str, str]] = []
    for z in data.zones:
        ts, counts = data.series.series("count", z.id)
        row = {"zone": z.id, "kind": KIND_WORDS.get(z.kind, z.kind)}
        if counts.size:
            dt = np.diff(ts, append=ts[-1]) if ts.size > 1 else np.ones(1)
            busy = float(dt[counts > 0].sum())
            row["peak"] = f"{int(counts.max())}"
            row["mean"] = f"{float((counts * dt).sum() / max(float(dt.sum()), 1e-9)):.2f}"
            row["occupied"] = f"{busy:.0f} s ({100 * busy / max(data.video_s, 1e-9):.0f} %)"
        else:
            row.update(peak="–", mean="–", occupied="–")
        _, dens = data.series.series("density", z.id)
        if dens.size:
            peak = float(dens.max())
            levels = [lv for _, lv in data.los.get(z.id, [])]
            worst = max(levels, key=LEVELS.index) if levels else None
            row["density"] = f"{fmt_density(peak)} /m²"
            row["los"] = f"{worst} ({LOS_WORDS[worst]})" if worst else "–"
        else:
            row["density"] = "–" if z.kind != "crowd" else "no area: set area_m2 or a calibration"
            row["los"] = "–"
        _, occ = data.series.series("occupancy", z.id)
        row["occupancy"] = (
            f"{100 * float(occ.max()):.0f} % of {z.capacity}" if occ.size and z.capacity else "–"
        )
        rows.append(row)
    return rows


def line_totals(events: Sequence[ReportEvent]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for e in events:
        if e.kind == "line_crossing":
            line = str(e.payload.get("line_id") or e.zone_id or "?")
            d = str(e.payload.get("direction") or "?")
            out.setdefault(line, {"in": 0, "out": 0})
            out[line][d] = out[line].get(d, 0) + 1
    return out


def describe_event(e: ReportEvent) -> str:
    """An event in plain words (its severity_reason when the rule gave one)."""
    p = e.payload
    if e.kind == "line_crossing":
        who = p.get("class") or "object"
        return f"{who} crossed {p.get('line_id') or e.zone_id or 'the line'} going {p.get('direction', '?')}"
    words = EVENT_WORDS.get(e.kind, e.kind.replace("_", " "))
    phase = {"start": "started", "end": "ended", "update": "update", "instant": ""}.get(e.phase, e.phase)
    text = f"{words} {phase}".strip()
    return f"{text}: {e.reason}" if e.reason else text


# ------------------------------------------------------------------------------------------- charts


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _hex(bgr: tuple[int, int, int]) -> str:
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


def density_formatter(step: float) -> Any:
    """Tick labels with as many decimals as the tick step needs (0.001 reads 0.001, not 0.00)."""
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 2

    def fmt(v: float, _pos: int | None = None) -> str:
        return f"{v:.{decimals}f}"

    return fmt


def chart_over_time(data: ReportData) -> bytes:
    """Counts, density, occupancy and events on one shared time axis (matplotlib)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    zones = [z for z in data.zones if data.series.series("count", z.id)[0].size]
    colour = {z.id: _hex(PALETTE[i % len(PALETTE)]) for i, z in enumerate(data.zones)}
    has_density = any(data.series.series("density", z.id)[0].size for z in data.zones)
    has_occ = any(data.series.series("occupancy", z.id)[0].size for z in data.zones)
    eps, instants = episodes(data.events)
    rows = _timeline_rows(eps, instants)
    panels = (
        ["count"] + (["density"] if has_density else []) + (["occupancy"] if has_occ else []) + ["events"]
    )
    heights = [3.0 if p != "events" else max(1.0, 0.45 * len(rows) + 0.6) for p in panels]
    fig = Figure(figsize=(10, sum(heights) + 0.8), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, gridspec_kw={"height_ratios": heights})
    t_end = max(data.video_s, 1.0)
    for ax, panel in zip(axes, panels, strict=True):
        ax.grid(True, axis="y", color="#dddddd", linewidth=0.8)
        ax.set_xlim(0, t_end)
        if panel == "count":
            for z in zones:
                ts, vs = data.series.series("count", z.id)
                ax.step(ts, vs, where="post", color=colour[z.id], linewidth=1.8, label=f"{z.id}: counted now")
                sts, svs = data.series.series("count_smoothed", z.id)
                if sts.size:
                    ax.plot(
                        sts,
                        svs,
                        color=colour[z.id],
                        linewidth=1.2,
                        linestyle="--",
                        label=f"{z.id}: smoothed\n(density = this ÷ {_area_text(data, z.id)})",
                    )
            ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=2))
            ax.set_ylim(bottom=0, top=max(1.0, ax.get_ylim()[1]))
            ax.set_ylabel("objects in zone")
            ax.set_title("How many objects each zone counted (the rules' own count)", loc="left", fontsize=10)
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, framealpha=0.9)
        elif panel == "density":
            peak = 0.0
            for z in data.zones:
                ts, vs = data.series.series("density", z.id)
                if ts.size:
                    ax.plot(ts, vs, color=colour[z.id], linewidth=1.8, label=z.id)
                    peak = max(peak, float(vs.max()))
            top = peak * 1.15 if peak > 0 else 0.01
            ax.set_ylim(0, top)
            ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 5, 10]))
            ticks = ax.get_yticks()
            step = float(ticks[1] - ticks[0]) if len(ticks) > 1 else top
            ax.yaxis.set_major_formatter(FuncFormatter(density_formatter(step)))
            ax.set_ylabel("persons per m²")
            _los_guides(ax, data, top)
            ax.set_title(
                "Crowd density (smoothed count ÷ zone area) and level of service", loc="left", fontsize=10
            )
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, framealpha=0.9)
        elif panel == "occupancy":
            for z in data.zones:
                ts, vs = data.series.series("occupancy", z.id)
                if ts.size:
                    ax.plot(
                        ts,
                        100 * vs,
                        color=colour[z.id],
                        linewidth=1.8,
                        label=f"{z.id} (capacity {z.capacity})",
                    )
            ax.axhline(100, color="#c0392b", linewidth=1, linestyle=":")
            ax.set_ylabel("% of capacity")
            ax.set_ylim(bottom=0)
            ax.set_title(
                "Bike bay occupancy (bikes ÷ capacity; above 100 % the bay overflows)",
                loc="left",
                fontsize=10,
            )
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, framealpha=0.9)
        else:
            _draw_timeline(ax, rows, t_end)
    axes[-1].set_xlabel("time into the recording (seconds)")
    return _png(fig)


def _area_text(data: ReportData, zone_id: str) -> str:
    a = data.area_m2.get(zone_id)
    return f"{a:.3g} m²" if a else "its area"


def _los_guides(ax: Any, data: ReportData, top: float) -> None:
    """Level-of-service limits inside the plotted range as labelled lines; otherwise one note."""
    drawn = False
    for zid, bounds in data.los_bounds.items():
        for lv, b in zip(LEVELS, bounds, strict=False):
            if b <= top:
                ax.axhline(b, color="#888888", linewidth=0.8, linestyle=":")
                ax.text(
                    ax.get_xlim()[1],
                    b,
                    f" {lv}|{LEVELS[LEVELS.index(lv) + 1]} ",
                    va="bottom",
                    ha="right",
                    fontsize=7,
                    color="#555555",
                )
                drawn = True
        if not drawn and bounds:
            ax.text(
                0.99,
                0.95,
                f"level of service A (free flow) throughout: A ends at {fmt_density(bounds[0])} /m² "
                f"({data.los_table.get(zid, 'walkway')} table)",
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=8,
                color="#555555",
            )
        break


def _timeline_rows(eps: list[Episode], instants: list[ReportEvent]) -> list[tuple[str, list[Any]]]:
    rows: dict[str, list[Any]] = {}
    for ep in eps:
        rows.setdefault(
            f"{EVENT_WORDS.get(ep.kind, ep.kind)}" + (f" · {ep.zone_id}" if ep.zone_id else ""), []
        ).append(ep)
    for e in instants:
        key = (
            f"crossings · {e.payload.get('line_id') or e.zone_id}"
            if e.kind == "line_crossing"
            else EVENT_WORDS.get(e.kind, e.kind) + (f" · {e.zone_id}" if e.zone_id else "")
        )
        rows.setdefault(key, []).append(e)
    return list(rows.items())


_SEV_COLOUR = {"critical": "#8e0000", "major": "#d35400", "minor": "#f1c40f", "info": "#7f8c8d"}


def _draw_timeline(ax: Any, rows: list[tuple[str, list[Any]]], t_end: float) -> None:
    ax.set_title(
        "Events (bars: from start to end; open bars ran past the end of the recording)",
        loc="left",
        fontsize=10,
    )
    if not rows:
        ax.text(
            0.5,
            0.5,
            "no violations, overflows, tasks, surges, tamper or crossings in this recording",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=9,
            color="#555555",
        )
        ax.set_yticks([])
        return
    for y, (_label, items) in enumerate(rows):
        for it in items:
            if isinstance(it, Episode):
                end = it.end if it.end is not None else t_end
                ax.broken_barh(
                    [(it.start, max(end - it.start, t_end * 0.003))],
                    (y - 0.3, 0.6),
                    facecolors=_SEV_COLOUR.get(it.severity, "#7f8c8d"),
                    alpha=0.85,
                )
                if it.end is None:
                    ax.annotate(
                        "",
                        xy=(t_end, y),
                        xytext=(t_end - t_end * 0.02, y),
                        arrowprops={"arrowstyle": "->", "color": "#333333"},
                    )
            else:
                marker = (
                    "^"
                    if it.payload.get("direction") == "in"
                    else "v"
                    if it.payload.get("direction") == "out"
                    else "o"
                )
                ax.plot([it.t], [y], marker=marker, color="#2c3e50", markersize=6, linestyle="none")
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.invert_yaxis()
    ax.grid(True, axis="x", color="#eeeeee")


def chart_heatmap(data: ReportData) -> bytes | None:
    """Seconds of presence per cell over the frame: perceptual colour map, smooth, legend in words."""
    if data.grid is None or data.background is None:
        return None
    from matplotlib.colors import PowerNorm
    from matplotlib.figure import Figure

    h, w = data.background.shape[:2]
    grid = np.asarray(data.grid, np.float64)
    top = float(grid.max())
    fig = Figure(figsize=(10, 10 * h / w * 0.92 + 0.6), layout="constrained")
    ax = fig.subplots()
    ax.imshow(cv2.cvtColor(data.background, cv2.COLOR_BGR2RGB))
    ax.set_axis_off()
    who = plural(data.grid_classes)
    rows, cols = grid.shape
    if top <= 0:
        ax.set_title(f"Where {who} stood: none were seen in this recording", loc="left", fontsize=10)
        return _png(fig)
    smooth = smooth_upsample(grid, w, h)
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=top)
    alpha = np.clip(np.sqrt(smooth / top) * 1.6, 0.0, 0.8)  # faint where little time was spent
    im = ax.imshow(
        smooth, cmap="inferno", norm=norm, alpha=alpha, extent=(0, w, h, 0), interpolation="bilinear"
    )
    ax.set_title(
        f"Where {who} stood: seconds of presence per cell, summed over {data.video_s:.0f} s of recording",
        loc="left",
        fontsize=10,
    )
    bar = fig.colorbar(im, ax=ax, shrink=0.85, pad=0.01)
    if bar.solids is not None:
        bar.solids.set_alpha(1.0)
    bar.set_label(f"seconds of presence in a cell ({cols} × {rows} cells over the picture)")
    return _png(fig)


# ------------------------------------------------------------------------------------------- page


def _img_tag(png: bytes, alt: str, mime: str = "image/png") -> str:
    return f'<img alt="{html.escape(alt)}" src="data:{mime};base64,{base64.b64encode(png).decode()}">'


def _jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError("could not encode a key frame as JPEG")
    return bytes(buf.tobytes())


def _png_cv(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("could not encode a picture as PNG")
    return bytes(buf.tobytes())


def _fmt_t(t: float) -> str:
    m, s = divmod(max(t, 0.0), 60.0)
    return f"{int(m)}:{s:04.1f}"


def _summary_sentences(data: ReportData, eps: list[Episode]) -> list[str]:
    out = [
        f"{data.video_s:.0f} s of recording from camera <b>{html.escape(data.camera_id)}</b> "
        f"({data.frames} frames analysed with {html.escape(data.model)})."
    ]
    for z in data.zones:
        _, c = data.series.series("count", z.id)
        if not c.size:
            continue
        most = int(c.max())
        text = f"Zone <b>{html.escape(z.id)}</b> ({KIND_WORDS.get(z.kind, z.kind)}): " + (
            f"at most {most} counted at once" if most else "nothing counted"
        )
        _, d = data.series.series("density", z.id)
        if d.size:
            levels = [lv for _, lv in data.los.get(z.id, [])]
            worst = max(levels, key=LEVELS.index) if levels else "A"
            text += f"; density peaked at {fmt_density(float(d.max()))} persons/m², level of service {worst} ({LOS_WORDS[worst]}) at worst"
        out.append(text + ".")
    for line, tot in line_totals(data.events).items():
        out.append(
            f"Line <b>{html.escape(line)}</b>: {tot.get('in', 0)} crossed in, {tot.get('out', 0)} crossed out."
        )
    alarms = [ep for ep in eps if ep.severity in ("critical", "major")]
    if eps:
        kinds = sorted({EVENT_WORDS.get(ep.kind, ep.kind) for ep in eps})
        out.append(f"{len(eps)} episode(s): {', '.join(kinds)}; {len(alarms)} of them major or critical.")
    else:
        out.append("No violation, overflow, dispatch task, surge or tamper episode.")
    return out


_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:16px 24px;color:#1d232a}
h1{font-size:22px;margin:8px 0} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccd}
table{border-collapse:collapse;margin:8px 0;font-size:14px} td,th{padding:3px 10px;border-bottom:1px solid #e3e6ea;text-align:left}
th{background:#f3f5f7} img{max-width:100%;border:1px solid #dde}
.meta{color:#555} .sev-critical{color:#8e0000;font-weight:bold} .sev-major{color:#c0392b;font-weight:bold}
.sev-minor{color:#a67c00} .sev-info{color:#555} figure{margin:12px 0} figcaption{color:#444;font-size:14px}
.note{background:#f7f7e8;border-left:4px solid #d8d27a;padding:6px 10px;font-size:14px}
dl{font-size:14px} dt{font-weight:bold;margin-top:6px}
"""


def build_html(data: ReportData) -> str:
    eps, instants = episodes(data.events)
    mpl = matplotlib_available()
    parts: list[str] = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Replay report: {html.escape(data.camera_id)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Replay report: camera {html.escape(data.camera_id)}</h1>",
        f"<p class='meta'>Recording <code>{html.escape(data.source)}</code> · {data.video_s:.1f} s · "
        f"{data.frames} frames · analysed in {data.wall_s:.0f} s · report made {html.escape(data.created)}</p>",
        "<h2>In short</h2><ul>" + "".join(f"<li>{s}</li>" for s in _summary_sentences(data, eps)) + "</ul>",
        "<h2>Zones</h2><table><tr><th>zone</th><th>kind</th><th>most counted at once</th><th>average count</th>"
        "<th>time with anyone in it</th><th>peak density</th><th>worst level of service</th><th>peak bay occupancy</th></tr>",
    ]
    for r in zone_rows(data):
        parts.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(r[k])}</td>"
                for k in ("zone", "kind", "peak", "mean", "occupied", "density", "los", "occupancy")
            )
            + "</tr>"
        )
    parts.append("</table>")
    parts.append("<h2>Over time</h2>")
    if mpl:
        parts.append(
            "<figure>"
            + _img_tag(chart_over_time(data), "counts, density and events over time")
            + "<figcaption>Solid lines: objects each zone counted at that moment. Dashed: the smoothed "
            "count the density is computed from, so the density falls gently after people leave. "
            "The bottom rows are the events, on the same time axis.</figcaption></figure>"
        )
    else:
        plot = render_timeseries(data.series, title=f"{data.camera_id}: per-zone numbers over time")
        parts.append(
            "<figure>"
            + _img_tag(_png_cv(plot), "per-zone time series")
            + "<figcaption>Drawn without matplotlib; <code>pip install edge[report]</code> gives the full "
            "charts with the events on the same time axis.</figcaption></figure>"
        )
    parts.append("<h2>Events</h2>")
    parts.append(_events_table(data, eps, instants))
    if data.loops is not None and (data.loops.by_bay or data.loops.kerb):
        parts.append(_loops_html(data.loops))
    parts.append("<h2>Where people and objects stood</h2>")
    heat_png = chart_heatmap(data) if mpl else None
    if heat_png is None and data.grid is not None and data.background is not None:
        heat = render_heatmap(data.grid, data.background, title="seconds of presence per cell")
        heat_png = _png_cv(heat)
    if heat_png is not None:
        who = plural(data.grid_classes)
        parts.append(
            "<figure>"
            + _img_tag(heat_png, "heat map of presence")
            + f"<figcaption>The picture is divided into cells; each cell adds up the seconds {html.escape(who)} "
            "stood in it (where the bottom-centre of their box was), over the whole recording: two for 10 s "
            "make 20 s. Brighter means "
            "longer; the colour scale is compressed (square root) so short visits still show, and values are "
            "smoothed between cell centres.</figcaption></figure>"
        )
    if data.key_frames:
        parts.append("<h2>Key moments</h2>")
        for kf in data.key_frames:
            parts.append(
                "<figure>"
                + _img_tag(_jpeg(kf.image), kf.caption, "image/jpeg")
                + f"<figcaption><b>{_fmt_t(kf.t)}</b> — {html.escape(kf.caption)}</figcaption></figure>"
            )
    parts.append(_definitions(data))
    parts.append("</body></html>")
    return "\n".join(parts)


def _sec(x: float | None) -> str:
    return "—" if x is None else fmt_duration(x)


def _loops_html(loops: LoopReport) -> str:
    """How fast each loop closed: dispatch tasks per bay and per operator, violations per kerb zone."""
    out = ["<h2>How fast each loop closed</h2>"]
    groups = [("bay", loops.by_bay), ("operator", loops.by_operator)]
    for name, figures in groups:
        if not figures:
            continue
        out.append(
            f"<table><tr><th>{name}</th><th>tasks</th><th>re-opened</th><th>acknowledged after (median / p95)</th>"
            "<th>never acknowledged</th><th>cleared, as the camera saw it (median / p95)</th>"
            "<th>closed by a command only</th><th>still open</th></tr>"
        )
        for key, f in figures.items():
            out.append(
                f"<tr><td>{html.escape(key)}</td><td>{f.tasks_opened}</td><td>{f.reopened_tasks}</td>"
                f"<td>{_sec(f.time_to_acknowledge_s.median)} / {_sec(f.time_to_acknowledge_s.p95)}</td>"
                f"<td>{f.unacknowledged}</td>"
                f"<td>{_sec(f.time_to_resolve_camera_s.median)} / {_sec(f.time_to_resolve_camera_s.p95)}</td>"
                f"<td>{f.resolved_by_command}</td><td>{f.unresolved}</td></tr>"
            )
        out.append("</table>")
    if loops.kerb:
        out.append(
            "<table><tr><th>kerb zone</th><th>violations</th><th>still open</th>"
            "<th>how long vehicles stood (median / p95)</th></tr>"
        )
        for zone, k in loops.kerb.items():
            out.append(
                f"<tr><td>{html.escape(zone)}</td><td>{k.violations}</td><td>{k.open}</td>"
                f"<td>{_sec(k.dwell_s.median)} / {_sec(k.dwell_s.p95)}</td></tr>"
            )
        out.append("</table>")
    out.append(
        "<p class='meta'>A task counts for the bay and for every operator whose bikes were in it. "
        "Acknowledged: the operator answered the dispatch task. Cleared: the camera saw the bay at or "
        "under capacity long enough. The same figures for a day or a fleet: <code>edge-agent report "
        "events.jsonl</code>.</p>"
    )
    return "\n".join(out)


def _events_table(data: ReportData, eps: list[Episode], instants: list[ReportEvent]) -> str:
    rows: list[str] = []
    for e in sorted((e for e in data.events if e.kind in EVENT_WORDS), key=lambda e: e.t):
        rows.append(
            f"<tr><td>{_fmt_t(e.t)}</td><td class='sev-{html.escape(e.severity)}'>{html.escape(e.severity)}</td>"
            f"<td>{html.escape(e.zone_id or '')}</td><td>{html.escape(describe_event(e))}</td></tr>"
        )
    periodic = sum(1 for e in data.events if e.kind in ("crowd_density", "bike_bay_status"))
    head = ""
    if periodic:
        head = (
            f"<p class='meta'>{periodic} periodic density / bay-count report(s) are not listed: their numbers are "
            "in the charts above.</p>"
        )
    if not rows:
        return head + "<p>No events to act on in this recording.</p>"
    return (
        head
        + "<table><tr><th>time (min:s)</th><th>severity</th><th>zone</th><th>what happened</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _definitions(data: ReportData) -> str:
    bounds = next(iter(data.los_bounds.values()), LOS_TABLES["walkway"])
    table = next(iter(data.los_table.values()), "walkway")
    los_rows = []
    lo = 0.0
    for lv, b in zip(LEVELS, [*bounds, math.inf], strict=False):
        hi = "and above" if math.isinf(b) else f"to {fmt_density(b)}"
        los_rows.append(
            f"<tr><td>{lv}</td><td>{LOS_WORDS[lv]}</td><td>{fmt_density(lo)} {hi} persons/m²</td></tr>"
        )
        lo = b
    return (
        "<h2>How to read this page</h2><dl>"
        "<dt>Counted</dt><dd>An object is in a zone when the bottom-centre of its box (where it stands) is inside "
        "the zone, after it has been there a moment (so a box wobbling on an edge is not counted twice). A person "
        "walking in from under the camera, feet still out of the picture, is counted once the feet come into view.</dd>"
        "<dt>Density</dt><dd>Persons per square metre of a crowd zone: the smoothed count divided by the zone's "
        "area on the ground. The smoothing makes the density rise and fall gently, so it lags the count.</dd>"
        f"<dt>Level of service</dt><dd>Fruin's {html.escape(table)} levels from the density:"
        "<table><tr><th>level</th><th>meaning</th><th>density</th></tr>" + "".join(los_rows) + "</table></dd>"
        "<dt>Occupancy</dt><dd>Bikes counted in a bay divided by its capacity.</dd>"
        "<dt>Severity</dt><dd>critical and major need action now; minor is worth a look; info is for the record.</dd>"
        "</dl>"
    )


def write_report(data: ReportData, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(build_html(data), encoding="utf-8")
    return p
