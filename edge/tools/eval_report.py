"""The report of ``edge-agent eval``: aggregates over a set's cases and the text table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from edge.tools.eval import CaseResult


def _mean(xs: Sequence[float]) -> float | None:
    return round(float(np.mean(xs)), 3) if xs else None


def aggregates(cases: Sequence[CaseResult]) -> dict[str, dict[str, Any]]:
    """MAE and mean signed error per count group (pipeline and bare detector), episode precision and
    recall, operator attribution accuracy."""
    out: dict[str, dict[str, Any]] = {}
    rows = [r for c in cases for r in c.rows]
    for group in ("counts", "frames", "lines"):
        rs = [r for r in rows if r.group == group]
        if not rs:
            continue
        errs = [r.error for r in rs if r.error is not None]
        base = [r.baseline_error for r in rs if r.baseline_error is not None]
        out[group] = {
            "n": len(errs),
            "missing": len(rs) - len(errs),
            "mae": _mean([abs(e) for e in errs]),
            "mean_error": _mean(errs),
            "baseline_n": len(base),
            "baseline_mae": _mean([abs(e) for e in base]),
            "baseline_mean_error": _mean(base),
        }
    eps = [e for c in cases for e in c.episodes]
    if any(c.episodes_checked for c in cases):
        truth = [e for e in eps if e.window is not None]
        found = [e for e in truth if e.found_s is not None]
        spurious = [e for e in eps if e.window is None]
        out["episodes"] = {
            "truth": len(truth),
            "found": len(found),
            "spurious": len(spurious),
            "recall": round(len(found) / len(truth), 3) if truth else None,
            "precision": round(len(found) / (len(found) + len(spurious)), 3) if found or spurious else None,
        }
    ops = [o for c in cases for o in c.operators]
    if ops:
        out["operators"] = _operators(ops)
    return out


def _operators(ops: Sequence[Any]) -> dict[str, Any]:
    """Attribution over all labelled bikes, and apart for shared bikes (truth names an operator: how many
    of the detected ones are named right, unattributed or named as another operator) and private bikes
    (truth null: how many of the detected ones are read as some operator's)."""
    detected = [o for o in ops if o.detected]
    right = [o for o in detected if o.found == o.truth]
    shared = [o for o in ops if o.truth is not None]
    shared_det = [o for o in shared if o.detected]
    shared_right = [o for o in shared_det if o.found == o.truth]
    private = [o for o in ops if o.truth is None]
    private_det = [o for o in private if o.detected]
    return {
        "truth": len(ops),
        "detected": len(detected),
        "right": len(right),
        "accuracy": round(len(right) / len(detected), 3) if detected else None,
        "detected_fraction": round(len(detected) / len(ops), 3),
        "shared": {
            "truth": len(shared),
            "detected": len(shared_det),
            "right": len(shared_right),
            "accuracy": round(len(shared_right) / len(shared_det), 3) if shared_det else None,
            "unattributed": sum(1 for o in shared_det if o.found is None),
            "wrong_operator": sum(1 for o in shared_det if o.found not in (None, o.truth)),
        },
        "private": {
            "truth": len(private),
            "detected": len(private_det),
            "read_as_shared": sum(1 for o in private_det if o.found is not None),
        },
    }


def _num(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "-"
    if float(v).is_integer():
        return f"{int(v):+d}" if signed else f"{int(v)}"
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def format_report(report: dict[str, Any]) -> str:
    """The per-case table and the aggregates, as text."""
    base = report.get("baseline_model")
    det = report["detector"]
    roi = f", roi {det['roi']}" + (f" {det['tile_grid'][0]}x{det['tile_grid'][1]}" if det["roi"] == "tiles" else "")
    lines = [
        f"{report['name']}: {len(report['cases'])} case(s), config {report['config']} "
        f"(model {report['model']}{roi}), {report['wall_s']:.1f} s",
        "",
    ]
    head = f"{'case':<18} {'figure':<26} {'t_s':>7} {'pipeline':>8} {'truth':>6} {'error':>6}"
    if base:
        head += f"  | {'bare':>5} {'error':>6}"
    lines.append(head)
    for c in report["cases"]:
        frame_rows = [r for r in c["rows"] if r["group"] == "frames"]
        for r in c["rows"]:
            if r["group"] == "frames" and len(frame_rows) > 12:
                continue  # summarised below
            line = (
                f"{c['id']:<18} {r['group'][:-1] + ' ' + r['what']:<26} {_num(r['t_s']) if r['t_s'] is not None else '':>7} "
                f"{_num(r['figure']):>8} {_num(r['truth']):>6} {_num(r['error'], True):>6}"
            )
            if base:
                line += f"  | {_num(r['baseline']):>5} {_num(r['baseline_error'], True):>6}"
            lines.append(line)
        if len(frame_rows) > 12:
            errs = [r["error"] for r in frame_rows if r["error"] is not None]
            berrs = [r["baseline_error"] for r in frame_rows if r["baseline_error"] is not None]
            line = (
                f"{c['id']:<18} {f'{len(errs)} labelled frames':<26} {'':>7} "
                f"{'MAE':>8} {'':>6} {_num(_mean([abs(e) for e in errs])):>6}"
            )
            if base:
                line += f"  | {'MAE':>5} {_num(_mean([abs(e) for e in berrs])):>6}"
            lines.append(line)
        for e in c["episodes"]:
            if e["window"] is None:
                what = f"SPURIOUS {e['kind']} {e['zone']} started at {e['found_s']:.1f} s"
            elif e["found_s"] is None:
                what = f"MISSED {e['kind']} {e['zone']} window {e['window'][0]:g}-{e['window'][1]:g} s"
            else:
                what = f"found {e['kind']} {e['zone']} at {e['found_s']:.1f} s (window {e['window'][0]:g}-{e['window'][1]:g})"
            lines.append(f"{c['id']:<18} episode {what}")
        for o in c["operators"]:
            verdict = "not detected" if not o["detected"] else ("right" if o["found"] == o["truth"] else "WRONG")
            box = ",".join(f"{v:.2f}" for v in o["box"])
            lines.append(f"{c['id']:<18} bike [{box}] truth {o['truth']} -> {o['found']} ({verdict})")
    lines.append("")
    agg = report["aggregates"]
    names = {"counts": "counts", "frames": "per labelled frame", "lines": "line crossings"}
    for group, title in names.items():
        a = agg.get(group)
        if not a:
            continue
        line = f"{title}: MAE {_num(a['mae'])}, mean signed error {_num(a['mean_error'], True)} ({a['n']} figures"
        line += f", {a['missing']} without a frame)" if a["missing"] else ")"
        if a["baseline_n"]:
            line += (
                f"; bare {base}: MAE {_num(a['baseline_mae'])}, mean signed error {_num(a['baseline_mean_error'], True)}"
            )
        lines.append(line)
    if "episodes" in agg:
        a = agg["episodes"]
        lines.append(
            f"episodes: recall {_num(a['recall'])} ({a['found']}/{a['truth']}), precision {_num(a['precision'])} "
            f"({a['spurious']} spurious)"
        )
    if "operators" in agg:
        a = agg["operators"]
        lines.append(
            f"operators: accuracy {_num(a['accuracy'])} ({a['right']}/{a['detected']} detected bikes right; "
            f"{a['detected']}/{a['truth']} labelled bikes detected)"
        )
        sh, pr = a["shared"], a["private"]
        if sh["truth"]:
            lines.append(
                f"  shared bikes: accuracy {_num(sh['accuracy'])} ({sh['right']}/{sh['detected']} detected named right, "
                f"{sh['unattributed']} named nobody, {sh['wrong_operator']} another operator; "
                f"{sh['detected']}/{sh['truth']} detected)"
            )
        if pr["truth"]:
            lines.append(
                f"  private bikes: {pr['read_as_shared']} of {pr['detected']} detected read as shared "
                f"({pr['detected']}/{pr['truth']} detected)"
            )
    return "\n".join(lines)
