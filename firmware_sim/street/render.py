"""Draw the synthetic street with numpy/cv2 primitives (top-down, 20 px per metre at 640x400).

The static scene (asphalt, pavement, markings) is drawn once; a few copies with mild sensor
noise are cycled so a static scene is not bit-identical from frame to frame. Actors are
drawn as solid rectangles (cars with a windscreen, bikes with wheels), never anti-aliased.
"""

from __future__ import annotations

import cv2
import numpy as np

from firmware_sim.street import scenario as sc

ASPHALT = (72, 72, 72)
PAVEMENT = (150, 150, 146)
PLAZA = (172, 168, 160)
BUILDING = (96, 100, 112)
MARKING = (225, 225, 225)
BAY_PAINT = (200, 200, 200)


class StreetRenderer:
    """Renders a ``Scenario`` at time ``t`` into a BGR uint8 image of ``width`` x ``height``."""

    def __init__(
        self, width: int = 640, height: int = 400, *, seed: int = 0, noise_sigma: float = 2.0
    ) -> None:
        if width < 64 or height < 40:
            raise ValueError(f"street frames must be at least 64x40 px, got {width}x{height}")
        self.width, self.height = width, height
        self.sx = width / sc.WORLD_W_M
        self.sy = height / sc.WORLD_H_M
        base = self._static()
        rng = np.random.default_rng(seed)
        self._backgrounds = [
            np.clip(
                base.astype(np.int16) + rng.normal(0, noise_sigma, base.shape).round().astype(np.int16),
                0,
                255,
            ).astype(np.uint8)
            if noise_sigma > 0
            else base.copy()
            for _ in range(6)
        ]
        self._i = 0

    def px(self, x_m: float, y_m: float) -> tuple[int, int]:
        return round(x_m * self.sx), round(y_m * self.sy)

    def _rect(
        self, img: np.ndarray, box: tuple[float, float, float, float], colour: tuple[int, int, int]
    ) -> None:
        x0, y0 = self.px(box[0], box[1])
        x1, y1 = self.px(box[2], box[3])
        cv2.rectangle(img, (x0, y0), (x1 - 1, y1 - 1), colour, thickness=-1, lineType=cv2.LINE_8)

    def _static(self) -> np.ndarray:
        img = np.zeros((self.height, self.width, 3), np.uint8)
        self._rect(img, (0, 0, sc.WORLD_W_M, 1.0), BUILDING)
        self._rect(img, sc.PAVEMENT, PAVEMENT)
        self._rect(img, (0, sc.KERB_LANE[1], sc.WORLD_W_M, sc.FAR_LANE[3]), ASPHALT)
        self._rect(img, sc.PLAZA, PLAZA)
        # kerb edge, lane dashes, no-parking zig-zag edge, bay outline, counting line stripe
        cv2.line(img, self.px(0, 7.0), self.px(sc.WORLD_W_M, 7.0), MARKING, 1)
        for x in np.arange(0.5, sc.WORLD_W_M, 3.0):
            cv2.line(img, self.px(x, 10.0), self.px(x + 1.5, 10.0), MARKING, 1)
        z = sc.NO_PARKING
        xs = np.arange(z[0], z[2] + 1e-6, 1.0)
        pts = np.array([self.px(x, 7.25 if i % 2 else 7.6) for i, x in enumerate(xs)], np.int32)
        cv2.polylines(img, [pts], False, (0, 200, 230), 1)
        b = sc.BIKE_BAY
        cv2.rectangle(img, self.px(b[0], b[1]), self.px(b[2], b[3]), BAY_PAINT, 1)
        (ax, ay), (bx, by) = sc.COUNT_LINE
        cv2.line(img, self.px(ax, ay), self.px(bx, by), (190, 186, 178), 1)
        return img

    def render(self, scenario: sc.Scenario, t: float) -> np.ndarray:
        img = self._backgrounds[self._i % len(self._backgrounds)].copy()
        self._i += 1
        for actor, x, y in scenario.visible(t):
            self.draw_actor(img, actor, x, y)
        return img

    def draw_actor(self, img: np.ndarray, actor: sc.Actor, x: float, y: float) -> None:
        fx, fy = actor.footprint()
        box = (x - fx / 2, y - fy / 2, x + fx / 2, y + fy / 2)
        self._rect(img, box, actor.colour)
        if actor.kind in ("car", "bus", "truck"):
            # a dark windscreen band near the front (right end when driving along x)
            if actor.heading == "h":
                self._rect(
                    img,
                    (box[2] - 0.28 * fx, box[1] + 0.15 * fy, box[2] - 0.18 * fx, box[3] - 0.15 * fy),
                    (25, 25, 25),
                )
            else:
                self._rect(
                    img,
                    (box[0] + 0.15 * fx, box[1] + 0.18 * fy, box[2] - 0.15 * fx, box[1] + 0.28 * fy),
                    (25, 25, 25),
                )
        elif actor.kind == "bicycle":
            # two dark wheels inside the frame outline
            if actor.heading == "v":
                c0, c1 = self.px(x, box[1] + 0.3), self.px(x, box[3] - 0.3)
            else:
                c0, c1 = self.px(box[0] + 0.3, y), self.px(box[2] - 0.3, y)
            r = max(1, round(0.22 * min(self.sx, self.sy)))
            cv2.circle(img, c0, r, (20, 20, 20), -1, cv2.LINE_8)
            cv2.circle(img, c1, r, (20, 20, 20), -1, cv2.LINE_8)
        elif actor.kind == "person":
            cv2.circle(img, self.px(x, y), max(1, round(0.12 * self.sx)), (40, 70, 110), -1, cv2.LINE_8)

    def box_px(self, actor: sc.Actor, x: float, y: float) -> tuple[float, float, float, float]:
        """The pixel box the renderer fills for an actor at (x, y) m (ground truth for detectors)."""
        fx, fy = actor.footprint()
        x0, y0 = self.px(x - fx / 2, y - fy / 2)
        x1, y1 = self.px(x + fx / 2, y + fy / 2)
        return float(x0), float(y0), float(x1), float(y1)
