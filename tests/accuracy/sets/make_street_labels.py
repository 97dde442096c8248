"""Writes labels/street-plaza.csv: people in the synthetic street's crowd zone, from the scenario itself.

    .venv/bin/python -m tests.accuracy.sets.make_street_labels

The street (firmware_sim/street) knows where every actor is at every moment: a person counts in the
``plaza`` zone when the centre of its footprint lies inside ``CROWD``. Every 2 s of the 480 s scenario.
The line totals of the spec (street.yaml) are what this prints: crossings of ``COUNT_LINE``.
"""

from __future__ import annotations

from pathlib import Path

from firmware_sim.street import scenario as sc

OUT = Path(__file__).with_name("labels") / "street-plaza.csv"


def main() -> None:
    s = sc.default_scenario()
    x0, y0, x1, y1 = sc.CROWD
    rows = [
        "# People in the synthetic street's crowd zone 'plaza' (firmware_sim/street/scenario.py CROWD),",
        "# from the scenario's own positions every 2 s; written by make_street_labels.py.",
        "t_s,zone,class,count",
    ]
    t = 0.0
    while t < s.duration_s - 1e-9:
        n = sum(1 for a, x, y in s.visible(t) if a.kind == "person" and x0 <= x < x1 and y0 <= y < y1)
        rows.append(f"{t:g},plaza,person,{n}")
        t += 2.0
    OUT.write_text("\n".join(rows) + "\n", encoding="utf-8")
    # Crossings of the counting line (x = 16 m between its ends): leftwards is "in" in demo-street.yaml.
    (lx, ly0), (_, ly1) = sc.COUNT_LINE
    ins = outs = 0
    for a in s.actors:
        if a.kind != "person":
            continue
        prev = None
        step = 0.05
        t = a.t0
        while t <= a.t1 + 1e-9:
            p = a.position(t)
            if p is not None and prev is not None and ly0 <= p[1] <= ly1 and (prev[0] - lx) * (p[0] - lx) < 0:
                ins += p[0] < lx
                outs += p[0] > lx
            prev = p
            t += step
    print(f"wrote {OUT}; line plaza-entry: in {ins}, out {outs}")


if __name__ == "__main__":
    main()
