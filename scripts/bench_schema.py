"""Events validated per second: jsonschema vs fastjsonschema, on the published schemas.

    .venv/bin/python scripts/bench_schema.py [--seconds 3]

Needs both libraries (jsonschema is a dev extra; install fastjsonschema into the dev venv to compare).
Each event is one example payload of each kind wrapped in a real envelope from EventBuilder; the
work timed is what the box does per event (the payload against its kind, then the envelope) plus,
for the whole-document line, the envelope too. Both validators get the same documents, and the
script first checks that they agree on every one.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from importlib import resources
from typing import Any


def _events() -> list[dict[str, Any]]:
    from edge.events.builder import EventBuilder
    from edge.events.schema import kind_schemas
    from edge.types import EventDraft

    b = EventBuilder(
        "pole-17",
        "gaoxin-south",
        config_hash="a1b2c3",
        clock_quality=lambda: "ntp",
        geo=lambda: (30.5, 104.0),
    )
    out = []
    for kind, schema in sorted(kind_schemas().items()):
        for ex in schema.get("examples", []):
            draft = EventDraft(
                kind=kind,
                phase="instant",
                key=f"{kind}:k",
                t=1.0,
                ts=1_795_335_303.12,
                camera_id="cam0",
                zone_id="bay-3",
                payload=ex,
            )
            out.append(
                b.build(draft, model={"name": "yolox_nano_416", "sha256": "695e750a" + "0" * 56}).to_dict()
            )
    return out


def _rate(fn: Callable[[dict[str, Any]], object], docs: list[dict[str, Any]], seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for d in docs:
            fn(d)
        n += len(docs)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = ap.parse_args()

    import fastjsonschema
    import jsonschema

    from edge.events.schema import event_schema, kind_schemas

    docs = _events()
    env_schema = {k: v for k, v in event_schema().items() if k != "allOf"}

    t0 = time.perf_counter()
    js_env = jsonschema.Draft202012Validator(env_schema)
    js_kind = {k: jsonschema.Draft202012Validator(s) for k, s in kind_schemas().items()}
    js_build_ms = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    fj_env = fastjsonschema.compile(copy.deepcopy(env_schema))  # it rewrites $refs in place
    fj_kind = {k: fastjsonschema.compile(copy.deepcopy(s)) for k, s in kind_schemas().items()}
    fj_build_ms = (time.perf_counter() - t0) * 1e3

    def fj_ok(v: Callable[[Any], Any], d: Any) -> bool:
        try:
            v(d)
            return True
        except fastjsonschema.JsonSchemaValueException:
            return False

    for d in docs:  # the two agree on every document, and every document is valid
        assert js_env.is_valid(d) and fj_ok(fj_env, d), d["kind"]
        assert js_kind[d["kind"]].is_valid(d["payload"]) and fj_ok(fj_kind[d["kind"]], d["payload"]), d[
            "kind"
        ]

    rows = [
        (
            "payload only (what EventBuilder checks per event)",
            _rate(lambda d: js_kind[d["kind"]].is_valid(d["payload"]), docs, args.seconds),
            _rate(lambda d: fj_kind[d["kind"]](d["payload"]), docs, args.seconds),
        ),
        (
            "envelope + payload (validate_event)",
            _rate(
                lambda d: js_env.is_valid(d) and js_kind[d["kind"]].is_valid(d["payload"]), docs, args.seconds
            ),
            _rate(lambda d: fj_env(d) and fj_kind[d["kind"]](d["payload"]), docs, args.seconds),
        ),
    ]
    print(
        f"{len(docs)} events of {len(kind_schemas())} kinds; validators built in "
        f"jsonschema {js_build_ms:.0f} ms, fastjsonschema {fj_build_ms:.0f} ms (compiled once per process)"
    )
    print(f"{'work':52} {'jsonschema /s':>14} {'fastjsonschema /s':>18} {'ratio':>6}")
    for name, a, b in rows:
        print(f"{name:52} {a:14,.0f} {b:18,.0f} {b / a:6.1f}")
    from importlib.metadata import version

    print(
        json.dumps(
            {
                "jsonschema": version("jsonschema"),
                "fastjsonschema": version("fastjsonschema"),
                "schemas": str(resources.files("edge.events").joinpath("schemas")),
            }
        )
    )


if __name__ == "__main__":
    main()
