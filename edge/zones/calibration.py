"""Ground-plane calibration: a homography from image pixels to metres (numpy DLT, no cv2)."""

from __future__ import annotations

import numpy as np

from edge.config.zones import CalibrationConfig
from edge.errors import ConfigError
from edge.zones.geometry import polygon_area


def fit_homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 homography mapping (N,2) ``src`` to (N,2) ``dst`` (N >= 4), least squares by normalised DLT."""
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    if src.shape[0] < 4 or src.shape != dst.shape:
        raise ValueError(
            f"need >= 4 matching point pairs, got {src.shape[0]} image and {dst.shape[0]} ground points"
        )

    def norm(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = p.mean(axis=0)
        s = np.sqrt(2) / max(float(np.mean(np.linalg.norm(p - c, axis=1))), 1e-12)
        t = np.array([[s, 0, -s * c[0]], [0, s, -s * c[1]], [0, 0, 1]])
        ph = np.c_[p, np.ones(len(p))] @ t.T
        return ph[:, :2], t

    s_n, ts = norm(src)
    d_n, td = norm(dst)
    n = src.shape[0]
    a = np.zeros((2 * n, 9))
    x, y = s_n[:, 0], s_n[:, 1]
    u, v = d_n[:, 0], d_n[:, 1]
    a[0::2, 0:3] = np.c_[-x, -y, -np.ones(n)]
    a[0::2, 6:9] = np.c_[u * x, u * y, u]
    a[1::2, 3:6] = np.c_[-x, -y, -np.ones(n)]
    a[1::2, 6:9] = np.c_[v * x, v * y, v]
    _, sv, vt = np.linalg.svd(a)
    hn = vt[-1].reshape(3, 3)
    h = np.linalg.inv(td) @ hn @ ts
    if sv[7] < 1e-9 * sv[0] or abs(np.linalg.det(hn)) < 1e-6:
        raise ValueError("the calibration points are degenerate (three or more on one line?)")
    return h / h[2, 2] if abs(h[2, 2]) > 1e-12 else h / np.linalg.norm(h)


def apply_homography(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.asarray(pts, np.float64).reshape(-1, 2)
    ph = np.c_[p, np.ones(len(p))] @ h.T
    w = ph[:, 2:3]
    w = np.where(np.abs(w) < 1e-12, 1e-12, w)
    return ph[:, :2] / w


class Homography:
    """Image pixels <-> ground metres for one camera at one frame size."""

    def __init__(self, image_px: np.ndarray, ground_m: np.ndarray) -> None:
        self.matrix = fit_homography(image_px, ground_m)
        self.inverse = np.linalg.inv(self.matrix)
        err = np.linalg.norm(
            apply_homography(self.matrix, image_px) - np.asarray(ground_m, np.float64), axis=1
        )
        self.rms_error_m = float(np.sqrt(np.mean(err**2)))

    @classmethod
    def from_config(cls, cal: CalibrationConfig, width: int, height: int) -> Homography:
        img = np.asarray(cal.image_points, np.float64) * np.array([width, height], np.float64)
        try:
            return cls(img, np.asarray(cal.ground_points_m, np.float64))
        except ValueError as exc:
            raise ConfigError(
                f"calibration: {exc}; re-pick the ground points with 'edge-agent calibrate'"
            ) from None

    def to_ground(self, pts_px: np.ndarray) -> np.ndarray:
        """(N,2) pixels -> (N,2) metres."""
        return apply_homography(self.matrix, pts_px)

    def to_image(self, pts_m: np.ndarray) -> np.ndarray:
        return apply_homography(self.inverse, pts_m)

    def area_m2(self, polygon_px: np.ndarray) -> float:
        """Ground area of an image polygon (its vertices projected; edges stay straight under a homography)."""
        return polygon_area(self.to_ground(polygon_px))

    def speed_mps(self, anchors_px: np.ndarray, velocity_pxps: np.ndarray) -> np.ndarray:
        """Ground speed of anchors moving at ``velocity_pxps`` (finite difference over 1 s)."""
        a = np.asarray(anchors_px, np.float64).reshape(-1, 2)
        g0 = self.to_ground(a)
        g1 = self.to_ground(a + np.asarray(velocity_pxps, np.float64).reshape(-1, 2))
        return np.linalg.norm(g1 - g0, axis=1)

    def footprint_m(self, xyxy: np.ndarray) -> np.ndarray:
        """Width on the ground of each box's bottom edge, (N,) metres."""
        b = np.asarray(xyxy, np.float64).reshape(-1, 4)
        left = self.to_ground(b[:, [0, 3]])
        right = self.to_ground(b[:, [2, 3]])
        return np.linalg.norm(right - left, axis=1)
