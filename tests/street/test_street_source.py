"""The synthetic street as a FrameSource: timing, determinism, end of stream, URL options."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import CaptureError
from edge.ports import FrameSource
from edge.types import Frame, SourceState, SourceStatus
from firmware_sim.street import Scenario, StreetOptions, StreetSource, default_scenario
from firmware_sim.street.scenario import Actor


def _frames(src: StreetSource, n: int) -> list[Frame]:
    out = []
    for _ in range(n):
        item = src.read()
        assert isinstance(item, Frame)
        out.append(item)
    return out


def test_is_a_frame_source_with_video_time() -> None:
    src = StreetSource("cam0", fps=4.0, options=StreetOptions(start_ts=1000.0))
    assert isinstance(src, FrameSource)
    frames = _frames(src, 5)
    assert [f.seq for f in frames] == [0, 1, 2, 3, 4]
    assert [f.t for f in frames] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert [f.ts for f in frames] == pytest.approx([1000.0, 1000.25, 1000.5, 1000.75, 1001.0])
    assert frames[0].image.shape == (400, 640, 3)
    assert all(f.camera_id == "cam0" for f in frames)


def test_ends_once_then_none() -> None:
    src = StreetSource("cam0", fps=2.0, options=StreetOptions(duration_s=3.0))
    frames = []
    item = src.read()
    while isinstance(item, Frame):
        frames.append(item)
        item = src.read()
    assert len(frames) == 7  # t = 0, 0.5, ... 3.0
    assert isinstance(item, SourceStatus) and item.state is SourceState.ENDED
    assert src.read() is None


def test_close_stops_frames() -> None:
    src = StreetSource("cam0")
    assert isinstance(src.read(), Frame)
    src.close()
    assert src.read() is None


def test_same_seed_same_frames_other_seed_other_noise() -> None:
    def grab(seed: int) -> np.ndarray:
        src = StreetSource("c", fps=1.0, options=StreetOptions(seed=seed))
        return np.stack([f.image for f in _frames(src, 30)])

    a, b, c = grab(1), grab(1), grab(2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # the difference between seeds is sensor noise only: a few grey levels
    assert np.abs(a.astype(int) - c.astype(int)).mean() < 4.0


def test_actor_is_drawn_where_the_scenario_puts_it() -> None:
    car = Actor("car", "car", ((0.0, 10.0, 8.5), (10.0, 20.0, 8.5)), (40, 40, 200))
    src = StreetSource("c", fps=1.0, scenario=Scenario(actors=(car,), duration_s=10.0))
    frames = _frames(src, 6)
    x0, y0, x1, y1 = (int(v) for v in src.renderer.box_px(car, 15.0, 8.5))  # t = 5
    patch = frames[5].image[y0:y1, x0:x1].astype(int)
    assert (
        np.abs(patch - np.array([40, 40, 200])).max(axis=2).mean() < 60
    )  # mostly car paint (plus windscreen)
    before = frames[0].image[y0:y1, x0:x1].astype(int)
    assert np.abs(before - np.array([40, 40, 200])).max(axis=2).min() > 60  # asphalt there at t=0


@pytest.mark.parametrize(
    ("url", "expect"),
    [
        ("sim://street", StreetOptions()),
        ("sim://street?seed=3&duration=90&speed=2", StreetOptions(seed=3, duration_s=90.0, speed=2.0)),
    ],
)
def test_url_options(url: str, expect: StreetOptions) -> None:
    assert StreetOptions.from_url(url) == expect


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("sim://road", "not a synthetic street"),
        ("sim://street?fps=3", "unknown option"),
        ("sim://street?seed=x", "bad option value"),
    ],
)
def test_bad_urls_name_the_fix(url: str, words: str) -> None:
    with pytest.raises(CaptureError, match=words):
        StreetOptions.from_url(url)


def test_scenario_expectations_fit_in_the_timeline() -> None:
    sc = default_scenario()
    kinds = sorted({e.kind for e in sc.expected})
    assert kinds == [
        "bike_bay_overflow",
        "bike_outside_bay",
        "crowd_surge",
        "dispatch_task",
        "parking_violation",
    ]
    for e in sc.expected:
        assert 0 < e.t_min < e.t_max < sc.duration_s, e
    # the ack is sent after the task can exist and before the bay is cleared
    task = next(e for e in sc.expected if e.kind == "dispatch_task")
    (ack,) = sc.commands
    assert task.t_max < ack.t < 195.0
