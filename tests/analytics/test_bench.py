"""The benchmark entry point the lead's ``bench`` command calls (figures go in the README, not asserted)."""

from __future__ import annotations

from edge.rules.bench import main, run_bench


def test_run_bench_reports_per_frame_times(capsys) -> None:  # type: ignore[no-untyped-def]
    r = run_bench(40, frames=40)
    assert r.objects == 40 and r.frames == 40
    assert 0 < r.tracker_ms and 0 < r.rules_ms and r.total_ms >= max(r.tracker_ms, r.rules_ms) * 0.5
    assert main(["--objects", "10", "--frames", "20", "--json"]) == 0
    assert '"objects": 10' in capsys.readouterr().out
