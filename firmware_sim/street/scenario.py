"""The synthetic street: its layout in metres and a scripted timeline of actors.

A top-down view of 32 m x 20 m of street (20 px per metre at 640x400):

    y  0-1    building line
    y  1-7    pavement with a bike bay (x 3-11) inside a bike watch area
    y  7-10   kerb lane with a no-parking zone (x 17-31)
    y 10-13   far traffic lane
    y 13-20   plaza with a crowd zone (x 4-12) and a counting line at x = 16

Every actor has keyframes ``(t, x_m, y_m)``; between them it moves in a straight line, before
the first and after the last it is not in the picture. The scenario also knows what the
agent must report (``expected``): see ``firmware_sim.street.truth``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

ActorKind = Literal["car", "bus", "truck", "bicycle", "person"]

WORLD_W_M = 32.0
WORLD_H_M = 20.0

# Regions in metres: (x0, y0, x1, y1).
PAVEMENT = (0.0, 1.0, WORLD_W_M, 7.0)
KERB_LANE = (0.0, 7.0, WORLD_W_M, 10.0)
FAR_LANE = (0.0, 10.0, WORLD_W_M, 13.0)
PLAZA = (0.0, 13.0, WORLD_W_M, WORLD_H_M)
NO_PARKING = (17.0, 7.0, 31.0, 10.3)
BIKE_BAY = (3.0, 1.6, 11.2, 5.6)
BIKE_WATCH = (1.0, 1.2, 24.0, 6.9)
CROWD = (4.0, 14.0, 12.0, 19.0)
COUNT_LINE = ((16.0, 13.2), (16.0, 19.8))
BAY_CAPACITY = 6

# Footprints (length along heading, width) in metres.
SIZES: dict[str, tuple[float, float]] = {
    "car": (4.4, 1.8),
    "bus": (12.0, 2.5),
    "truck": (7.5, 2.3),
    "bicycle": (1.8, 0.6),
    "person": (0.5, 0.5),
}

# Saturated colours (BGR) that stand out against the grey asphalt, pavement and plaza.
CAR_COLOURS = [(40, 40, 200), (200, 90, 30), (30, 160, 40), (20, 20, 20), (230, 230, 240), (140, 30, 140)]
FLEET_COLOURS = {"yellow": (0, 210, 245), "blue": (210, 110, 0), "green": (40, 180, 40)}
PERSON_COLOURS = [(40, 40, 210), (210, 80, 40), (30, 30, 30), (40, 200, 220), (160, 40, 160), (50, 150, 30)]


@dataclass(frozen=True, slots=True)
class Actor:
    """One object on the street with its path. ``heading`` is 'h' (along x) or 'v' (along y)."""

    id: str
    kind: ActorKind
    keys: tuple[tuple[float, float, float], ...]  # (t, x_m, y_m), t ascending
    colour: tuple[int, int, int]
    heading: Literal["h", "v"] = "h"
    livery: str | None = None

    @property
    def t0(self) -> float:
        return self.keys[0][0]

    @property
    def t1(self) -> float:
        return self.keys[-1][0]

    def position(self, t: float) -> tuple[float, float] | None:
        """Centre in metres at ``t``, or None when the actor is not in the picture."""
        if t < self.t0 or t > self.t1:
            return None
        ts = np.array([k[0] for k in self.keys])
        return (
            float(np.interp(t, ts, [k[1] for k in self.keys])),
            float(np.interp(t, ts, [k[2] for k in self.keys])),
        )

    def footprint(self) -> tuple[float, float]:
        """(size along x, size along y) in metres."""
        length, width = SIZES[self.kind]
        return (length, width) if self.heading == "h" else (width, length)


@dataclass(frozen=True, slots=True)
class ScriptedCommand:
    """A command the demo sends at ``t`` (e.g. the operator acknowledging a dispatch task)."""

    t: float
    name: str
    zone_id: str


@dataclass(frozen=True, slots=True)
class ExpectedEpisode:
    """An episode the agent must report: a ``start`` of ``kind`` in ``zone_id`` within [t_min, t_max]."""

    kind: str
    zone_id: str
    t_min: float
    t_max: float
    note: str = ""


@dataclass(frozen=True, slots=True)
class Scenario:
    actors: tuple[Actor, ...]
    duration_s: float
    commands: tuple[ScriptedCommand, ...] = ()
    expected: tuple[ExpectedEpisode, ...] = ()
    # Task phases the dispatch task of each expected overflow must go through, in order.
    task_phases: tuple[str, ...] = field(default=("open", "acknowledged", "resolved"))

    def visible(self, t: float) -> list[tuple[Actor, float, float]]:
        out = []
        for a in self.actors:
            p = a.position(t)
            if p is not None:
                out.append((a, p[0], p[1]))
        return out


def _drive(
    t_enter: float, x_from: float, x_to: float, y: float, speed: float
) -> list[tuple[float, float, float]]:
    return [(t_enter, x_from, y), (t_enter + abs(x_to - x_from) / speed, x_to, y)]


def _car(aid: str, colour_i: int, keys: list[tuple[float, float, float]], kind: ActorKind = "car") -> Actor:
    return Actor(aid, kind, tuple(keys), CAR_COLOURS[colour_i % len(CAR_COLOURS)])


def default_scenario(
    *,
    grace_s: float = 60.0,
    overflow_s: float = 30.0,
    dwell_s: float = 60.0,
    detect_lag_s: float = 25.0,
) -> Scenario:
    """The demo street, about 8 minutes of video time.

    Rule parameters (from the demo config) only shape the expected windows; the timeline
    itself is fixed so that every expected episode happens with a wide margin.
    ``detect_lag_s`` is how late after its nominal time an episode may start (stationarity
    must be confirmed, counts smoothed...).
    """
    lag = detect_lag_s
    actors: list[Actor] = []
    kerb_y, far_y = 8.5, 11.6
    # --- kerb: A parks long (violation), B stops briefly (no violation), C parks long (violation).
    a_park, a_leave = 9.0, 170.0
    actors.append(
        _car(
            "car-A",
            0,
            [
                (5.0, -3.0, kerb_y),
                (a_park, 21.0, kerb_y),
                (a_leave, 21.0, kerb_y),
                (a_leave + 4.0, 36.0, kerb_y),
            ],
        )
    )
    b_park, b_leave = 62.0, 62.0 + min(35.0, 0.6 * grace_s)
    actors.append(
        _car(
            "car-B",
            1,
            [
                (60.0, 35.0, kerb_y),
                (b_park, 27.5, kerb_y),
                (b_leave, 27.5, kerb_y),
                (b_leave + 2.0, 36.0, kerb_y),
            ],
        )
    )
    c_park, c_leave = 202.0, 330.0
    actors.append(
        _car(
            "car-C",
            2,
            [
                (200.0, 35.0, kerb_y),
                (c_park, 27.5, kerb_y),
                (c_leave, 27.5, kerb_y),
                (c_leave + 2.0, 36.0, kerb_y),
            ],
        )
    )
    # --- through traffic in the far lane (never stops).
    for i, (t, rightward) in enumerate(
        [(20, True), (45, False), (130, True), (240, False), (300, True), (380, False)]
    ):
        x0, x1 = (-3.0, 35.0) if rightward else (35.0, -3.0)
        actors.append(_car(f"traffic-{i}", 3 + i, _drive(float(t), x0, x1, far_y, 8.0)))
    actors.append(Actor("bus-1", "bus", tuple(_drive(150.0, 39.0, -7.0, far_y, 7.0)), (0, 140, 230)))
    actors.append(Actor("truck-1", "truck", tuple(_drive(260.0, -5.0, 37.0, far_y, 7.0)), (120, 120, 30)))
    # --- bike bay: nine bikes roll in (capacity 6), the operator clears five.
    slots = [3.5 + 0.85 * i for i in range(9)]
    fleets = ["yellow", "blue", "yellow", "green", "yellow", "blue", "yellow", "yellow", "green"]
    arrive = [20.0 + 10.0 * i for i in range(9)]
    remove_at = {8: 180.0, 7: 185.0, 6: 190.0, 5: 195.0, 4: 200.0}
    end = 480.0
    for i, x in enumerate(slots):
        t_in = arrive[i]
        keys = [(t_in, x, -1.0), (t_in + 3.0, x, 3.6)]
        if i in remove_at:
            t_out = remove_at[i]
            keys += [(t_out, x, 3.6), (t_out + 3.0, x, -1.0)]
        else:
            keys.append((end, x, 3.6))
        actors.append(Actor(f"bike-{i}", "bicycle", tuple(keys), FLEET_COLOURS[fleets[i]], "v", fleets[i]))
    over_t = arrive[BAY_CAPACITY]  # the 7th bike rolls in (it is inside the bay within 2 s)
    clear_t = remove_at[6] + 3.0  # back to capacity
    # --- two bikes dumped on the pavement outside the bay, inside the watch area.
    dump_t = 240.0
    for j, x in enumerate((15.5, 19.0)):
        keys = [(dump_t + 4.0 * j, x, -1.0), (dump_t + 4.0 * j + 3.0, x, 5.0), (end, x, 5.0)]
        actors.append(Actor(f"dumped-{j}", "bicycle", tuple(keys), FLEET_COLOURS["yellow"], "h", "yellow"))
    # --- plaza: a few walkers cross; a crowd of 40 gathers in the crowd zone, then disperses.
    for i, (t, rightward) in enumerate([(10, True), (70, False), (140, True), (200, False), (430, True)]):
        x0, x1 = (-1.0, 33.0) if rightward else (33.0, -1.0)
        actors.append(
            Actor(f"walker-{i}", "person", tuple(_drive(float(t), x0, x1, 19.4, 1.4)), PERSON_COLOURS[i % 6])
        )
    gather_t0, leave_t0 = 280.0, 385.0
    cols, rows = 8, 5
    n = cols * rows
    for i in range(n):
        row, col = i % rows, i // rows
        sx, sy = 4.45 + 0.9 * col, 14.45 + 0.9 * row
        t_in = gather_t0 + 1.0 * i
        t_sit = t_in + (33.0 - sx) / 1.4
        # leave in reverse order of columns, so nobody walks through a standing person
        t_out = leave_t0 + 1.0 * (n - 1 - i)
        keys = [(t_in, 33.0, sy), (t_sit, sx, sy), (t_out, sx, sy), (t_out + (33.0 - sx) / 1.4, 33.0, sy)]
        actors.append(Actor(f"person-{i}", "person", tuple(keys), PERSON_COLOURS[i % 6]))
    gathered_t = gather_t0 + (n - 1) + (33.0 - 4.45) / 1.4

    expected = (
        ExpectedEpisode(
            "parking_violation", "kerb-no-parking", a_park + grace_s, a_park + grace_s + lag, "car-A"
        ),
        ExpectedEpisode(
            "parking_violation", "kerb-no-parking", c_park + grace_s, c_park + grace_s + lag, "car-C"
        ),
        ExpectedEpisode(
            "bike_bay_overflow", "bay-1", over_t + overflow_s, over_t + overflow_s + lag, "9 bikes > 6"
        ),
        ExpectedEpisode(
            "dispatch_task", "bay-1", over_t + overflow_s, over_t + overflow_s + lag, "task for bay-1"
        ),
        ExpectedEpisode(
            "bike_outside_bay", "bike-watch", dump_t + 3.0 + dwell_s, dump_t + 3.0 + dwell_s + lag, "dumped-0"
        ),
        ExpectedEpisode(
            "bike_outside_bay", "bike-watch", dump_t + 7.0 + dwell_s, dump_t + 7.0 + dwell_s + lag, "dumped-1"
        ),
        ExpectedEpisode("crowd_surge", "plaza", gather_t0, gathered_t + lag, "40 people gather"),
    )
    commands = (
        ScriptedCommand(
            t=max(clear_t - 40.0, over_t + overflow_s + lag + 5.0), name="ack_task", zone_id="bay-1"
        ),
    )
    return Scenario(actors=tuple(actors), duration_s=end, commands=commands, expected=expected)


STOP_LINE_X = 31.0  # the queue scenario's traffic light stands at the end of the kerb lane's zone
QUEUE_GAP_M = 1.6  # bumper to bumper in a standing queue


def queue_scenario(*, grace_s: float = 60.0, detect_lag_s: float = 25.0) -> Scenario:
    """A queue is not parking: about 5 minutes of the kerb lane as a lane of traffic at a light.

    The kerb lane carries traffic to a light at x = 31 m. Red from 20 s to 110 s: three cars queue in
    the lane (the first two inside the no-parking zone), standing 82-90 s, longer than ``grace_s``,
    and move off in turn at green. Through traffic keeps moving in the far lane all along. Then a car
    stops at the kerb in the zone, alone, beside the moving traffic, for 150 s: the one violation.
    With the kerb lane configured as a lane of the zone (``lanes``) the agent reports that car only;
    without, the queue is three more "parked" cars.
    """
    actors: list[Actor] = []
    kerb_y, far_y = 8.5, 11.6
    car_len = SIZES["car"][0]
    # --- through traffic in the far lane, both ways, never stopping
    for i, t in enumerate(range(5, 320, 12)):
        rightward = i % 2 == 0
        x0, x1 = (-3.0, 35.0) if rightward else (35.0, -3.0)
        actors.append(_car(f"through-{i}", 3 + i, _drive(float(t), x0, x1, far_y, 9.0)))
    # --- the queue: red 20-110 s
    green = 110.0
    for i in range(3):
        x_stop = STOP_LINE_X - car_len / 2 - 0.2 - i * (car_len + QUEUE_GAP_M)
        t_in = 20.0 + 4.0 * i
        t_stop = t_in + (x_stop + 3.0) / 8.0
        t_go = green + 2.0 * i  # each follows the one ahead two seconds later
        actors.append(
            _car(
                f"queue-{i}",
                i,
                [
                    (t_in, -3.0, kerb_y),
                    (t_stop, x_stop, kerb_y),
                    (t_go, x_stop, kerb_y),
                    (t_go + (36.0 - x_stop) / 6.0, 36.0, kerb_y),
                ],
            )
        )
    # --- a car stops at the kerb in the zone, alone, beside the moving traffic
    k_park, k_leave = 150.0, 300.0
    actors.append(
        _car(
            "car-K",
            5,
            [(k_park - 3.0, -3.0, kerb_y), (k_park, 24.0, kerb_y), (k_leave, 24.0, kerb_y), (k_leave + 2.0, 36.0, kerb_y)],
        )
    )
    expected = (
        ExpectedEpisode(
            "parking_violation",
            "kerb-no-parking",
            k_park + grace_s,
            k_park + grace_s + detect_lag_s,
            "car-K at the kerb beside moving traffic (the queue at the light is not parked)",
        ),
    )
    return Scenario(actors=tuple(actors), duration_s=330.0, expected=expected, task_phases=())


SCENARIOS = {"default": default_scenario, "queue": queue_scenario}


def _rect_poly(r: tuple[float, float, float, float]) -> list[list[float]]:
    x0, y0, x1, y1 = (r[0] / WORLD_W_M, r[1] / WORLD_H_M, r[2] / WORLD_W_M, r[3] / WORLD_H_M)
    return [
        [round(x0, 4), round(y0, 4)],
        [round(x1, 4), round(y0, 4)],
        [round(x1, 4), round(y1, 4)],
        [round(x0, 4), round(y1, 4)],
    ]


def camera_layout() -> dict[str, object]:
    """The zones, counting line and calibration of the street camera, as config data (normalised).

    ``firmware_sim/street/demo-street.yaml`` carries the same values; a test keeps the two in step.
    """
    (ax, ay), (bx, by) = COUNT_LINE
    return {
        "zones": [
            {"id": "kerb-no-parking", "kind": "no_parking", "polygon": _rect_poly(NO_PARKING)},
            {"id": "bay-1", "kind": "bike_bay", "capacity": BAY_CAPACITY, "polygon": _rect_poly(BIKE_BAY)},
            {"id": "bike-watch", "kind": "bike_watch", "polygon": _rect_poly(BIKE_WATCH)},
            {"id": "plaza", "kind": "crowd", "polygon": _rect_poly(CROWD)},
        ],
        "lines": [
            {
                "id": "plaza-entry",
                "a": [round(ax / WORLD_W_M, 4), round(ay / WORLD_H_M, 4)],
                "b": [round(bx / WORLD_W_M, 4), round(by / WORLD_H_M, 4)],
            }
        ],
        "calibration": {
            "image_points": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
            "ground_points_m": [[0.0, 0.0], [WORLD_W_M, 0.0], [WORLD_W_M, WORLD_H_M], [0.0, WORLD_H_M]],
        },
    }
