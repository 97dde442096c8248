"""The one home of the agent's plane geometry: boxes, polygons, segments and the ground homography.

Pure numpy (no cv2), vectorised over points and boxes. Every stage that needs one of these
operations calls it here: NMS and tile fusion (``edge.vision``), association (``edge.tracking``),
zones and lines (``edge.zones``, ``edge.rules``), the motion backend's footprints, replay and
the calibration page. Coordinates are pixels unless a name says metres (``_m``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# ------------------------------------------------------------------------------------ boxes


def iou_matrix(a: np.ndarray, b: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """(N,M) intersection over union of xyxy boxes ``a`` (N,4) and ``b`` (M,4).

    float32 by default (association and NMS: fast, in-place temporaries); ``dtype=np.float64`` where
    an IoU is compared with a threshold exactly (agreement figures)."""
    a = np.asarray(a, dtype).reshape(-1, 4)
    b = np.asarray(b, dtype).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]), dtype)
    inter = _intersection(a, b)
    area_a = np.maximum(a[:, 2] - a[:, 0], 0) * np.maximum(a[:, 3] - a[:, 1], 0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    union = area_a[:, None] + area_b[None, :]
    union -= inter
    np.maximum(union, 1e-6, out=union)
    inter /= union
    return inter


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,M) intersection areas of float32 xyxy boxes (in-place temporaries). The coordinates are
    made contiguous rows first: broadcasting strided columns costs ~25 % more at 300 boxes."""
    at, bt = np.ascontiguousarray(a.T), np.ascontiguousarray(b.T)
    iw = np.minimum(at[2][:, None], bt[2][None, :])
    iw -= np.maximum(at[0][:, None], bt[0][None, :])
    np.maximum(iw, 0, out=iw)
    ih = np.minimum(at[3][:, None], bt[3][None, :])
    ih -= np.maximum(at[1][:, None], bt[1][None, :])
    np.maximum(ih, 0, out=ih)
    iw *= ih
    return iw


def ios_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,M) intersection over the *smaller* box's area of xyxy boxes ``a`` (N,4) and ``b`` (M,4).

    1.0 when one box lies wholly inside the other whatever their sizes (where IoU would be small):
    the test for a fragment of an object inside the whole object's box.
    """
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]), np.float32)
    inter = _intersection(a, b)
    area_a = np.maximum(a[:, 2] - a[:, 0], 0) * np.maximum(a[:, 3] - a[:, 1], 0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    smaller = np.minimum(area_a[:, None], area_b[None, :])
    np.maximum(smaller, 1e-6, out=smaller)
    inter /= smaller
    return inter


# ---------------------------------------------------------------------------------- matching


def greedy_pairs(rows: np.ndarray, cols: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Greedy one-to-one matching by descending score over sparse candidate pairs.

    Returns the indices of the chosen pairs. Each round takes every pair that is the best of both
    its row and its column (all vectorised); a handful of rounds settles a frame.
    """
    order = np.argsort(-score, kind="stable")
    r, c, idx = rows[order], cols[order], order
    chosen: list[np.ndarray] = []
    while r.size:
        first_r = np.zeros(r.size, bool)
        first_r[np.unique(r, return_index=True)[1]] = True
        first_c = np.zeros(r.size, bool)
        first_c[np.unique(c, return_index=True)[1]] = True
        pick = first_r & first_c
        chosen.append(idx[pick])
        keep = ~np.isin(r, r[pick]) & ~np.isin(c, c[pick])
        r, c, idx = r[keep], c[keep], idx[keep]
    return np.concatenate(chosen) if chosen else np.zeros(0, np.intp)


def greedy_match(score: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (rows, cols) chosen greedily by descending score, each row/col at most once, score >= threshold."""
    r, c = np.nonzero(score >= threshold)
    pick = greedy_pairs(r, c, score[r, c])
    return r[pick], c[pick]


def pair_boxes(a: np.ndarray, b: np.ndarray, *, iou: float, ios: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs (rows of ``a``, rows of ``b``) of boxes that are the same object seen twice:
    IoU >= ``iou`` or intersection over the smaller box >= ``ios``; greedy by descending IoU, each box
    in at most one pair (one object is one box of each view, so a box never stands for two)."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    u = iou_matrix(a, b)
    same = (u >= iou) | (ios_matrix(a, b) >= ios)
    rank = np.where(same & (u > 0), u, -1.0)
    return greedy_match(rank, 1e-9)


def same_top_parts(
    xyxy: np.ndarray, *, min_ios: float = 0.8, top_tol: float = 0.1, centre_tol: float = 0.15
) -> np.ndarray:
    """(N,) bool: boxes that are part of a larger box of the list -- lying at least ``min_ios`` inside it,
    their top edges within ``top_tol`` of the smaller box's height and their centres within ``centre_tol``
    of the larger box's width (one standing object boxed whole and in part: a person's full body and
    upper body). A second object exactly there would stand behind the first with its top hidden behind
    the first's top, so it would not be seen."""
    b = np.asarray(xyxy, np.float32).reshape(-1, 4)
    n = b.shape[0]
    if n < 2:
        return np.zeros(n, bool)
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    area = w * h
    cx = (b[:, 0] + b[:, 2]) * 0.5
    inside = ios_matrix(b, b) >= min_ios  # [i, j]: the smaller of i, j lies inside the other
    larger = area[None, :] > area[:, None]  # [i, j]: j is the larger
    top = np.abs(b[:, None, 1] - b[None, :, 1]) <= top_tol * h[:, None]
    centre = np.abs(cx[:, None] - cx[None, :]) <= centre_tol * w[None, :]
    return (inside & larger & top & centre).any(axis=1)  # type: ignore[no-any-return]


def anchors(xyxy: np.ndarray) -> np.ndarray:
    """Bottom-centre of each xyxy box, (N,2): where an object stands on the ground."""
    b = np.asarray(xyxy).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) * 0.5, b[:, 3]], axis=1)


# --------------------------------------------------------------------------------- polygons


def polygon_edges(polygon: np.ndarray) -> np.ndarray:
    """(5,V) rows x1, y1, x2, y2, (x2-x1)/(y2-y1) of a polygon's edges (precompute once per zone)."""
    poly = np.asarray(polygon, np.float64).reshape(-1, 2)
    x1, y1 = poly[:, 0], poly[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    dy = np.where(y2 == y1, 1e-12, y2 - y1)
    return np.stack([x1, y1, x2, y2, (x2 - x1) / dy])


def points_in_polygon(
    points: np.ndarray, polygon: Sequence[Sequence[float]] | np.ndarray, edges: np.ndarray | None = None
) -> np.ndarray:
    """Even-odd rule for (N,2) points against one (V,2) polygon; (N,) bool. Vectorised over N×V.

    ``edges`` is ``polygon_edges(polygon)`` when the caller keeps it (zones compile it once).
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if pts.shape[0] == 0:
        return np.zeros(0, bool)
    e = polygon_edges(np.asarray(polygon, np.float64)) if edges is None else edges
    x = pts[:, 0:1]
    y = pts[:, 1:2]
    straddle = (e[1] > y) != (e[3] > y)
    xcross = e[0] + (y - e[1]) * e[4]
    hits = straddle & (x < xcross)
    return (np.count_nonzero(hits, axis=1) % 2) == 1


def distance_to_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) distance from each point to the nearest edge of a (V,2) polygon (vectorised over N×V)."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    a = np.asarray(polygon, np.float64).reshape(-1, 2)
    if pts.shape[0] == 0:
        return np.zeros(0)
    b = np.roll(a, -1, axis=0)
    ab = b - a  # (V,2)
    ap = pts[:, None, :] - a[None, :, :]  # (N,V,2)
    denom = np.maximum((ab * ab).sum(axis=1), 1e-12)
    u = np.clip((ap * ab[None]).sum(axis=2) / denom[None], 0.0, 1.0)
    closest = a[None] + u[..., None] * ab[None]
    return np.sqrt(((pts[:, None, :] - closest) ** 2).sum(axis=2)).min(axis=1)


FRAME_EDGE_TOL = 1e-3  # a normalised coordinate this close to 0 or 1 lies on the frame border
FRAME_EDGE_PAD_PX = 2.0  # how far past the border such a vertex is moved when compiled to pixels


def reach_frame_edges(
    polygon: np.ndarray, width: float, height: float, pad: float = FRAME_EDGE_PAD_PX
) -> np.ndarray:
    """A region's (V,2) vertices with every one on (or beyond) a frame border moved ``pad`` past it.

    Boxes are clipped to the frame, so the nearest objects -- cut by the frame's bottom or side --
    have their anchor exactly on the border; a strict point-in-polygon test puts such a point outside
    a zone drawn to the border. Moving the border vertices outwards makes the zone's border edges
    lie outside the frame, so everything on the border is inside. ``width``/``height`` are the frame
    size in the polygon's units (pixels, or 1, 1 for normalised points; pass ``pad`` in the same units).
    """
    p = np.array(polygon, np.float64).reshape(-1, 2)
    for axis, size in ((0, float(width)), (1, float(height))):
        tol = FRAME_EDGE_TOL * size
        col = p[:, axis]
        col[col <= tol] = np.minimum(col[col <= tol], -pad)
        col[col >= size - tol] = np.maximum(col[col >= size - tol], size + pad)
    return p


def clip_polygon_to_rect(polygon: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """The part of a (V,2) polygon inside the rectangle [x0, x1] x [y0, y1] (Sutherland-Hodgman).

    Used for the area of a zone that reaches beyond the frame: only the part in view is on the ground
    the camera sees. Returns (K,2), K = 0 when nothing is inside.
    """
    pts: list[tuple[float, float]] = [
        (float(q[0]), float(q[1])) for q in np.asarray(polygon, np.float64).reshape(-1, 2)
    ]
    for axis, bound, keep_above in ((0, x0, True), (0, x1, False), (1, y0, True), (1, y1, False)):
        if not pts:
            break

        def inside(q: tuple[float, float], axis: int = axis, bound: float = bound, above: bool = keep_above) -> bool:
            return q[axis] >= bound if above else q[axis] <= bound

        out: list[tuple[float, float]] = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            if inside(cur) != inside(prev):
                u = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + u * (cur[0] - prev[0]), prev[1] + u * (cur[1] - prev[1])))
            if inside(cur):
                out.append(cur)
        pts = out
    return np.asarray(pts, np.float64).reshape(-1, 2)


def polygon_area(polygon: np.ndarray) -> float:
    """Shoelace area of a (V,2) polygon (absolute value)."""
    p = np.asarray(polygon, np.float64).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) * 0.5)


def segments_cross(p0: np.ndarray, p1: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Signed crossings of N moves p0->p1 over segment a-b.

    Returns (N,) int8: +1 when the move goes from the left of a->b to its right, as seen by someone
    standing at a looking towards b on the screen (image y points down), -1 the other way, 0 for none.
    """
    p0 = np.asarray(p0, np.float64).reshape(-1, 2)
    p1 = np.asarray(p1, np.float64).reshape(-1, 2)
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    d = b - a

    def side(p: np.ndarray) -> np.ndarray:
        return np.sign(d[0] * (p[:, 1] - a[1]) - d[1] * (p[:, 0] - a[0]))

    s0, s1 = side(p0), side(p1)
    m = p1 - p0
    # Where the other segment's ends lie relative to the move.
    ca = np.sign(m[:, 0] * (a[1] - p0[:, 1]) - m[:, 1] * (a[0] - p0[:, 0]))
    cb = np.sign(m[:, 0] * (b[1] - p0[:, 1]) - m[:, 1] * (b[0] - p0[:, 0]))
    crosses = (s0 != 0) & (s1 != 0) & (s0 != s1) & (ca != cb)
    # With y down, side() < 0 is the left of a->b.
    out = np.zeros(p0.shape[0], np.int8)
    out[crosses & (s0 < 0)] = 1
    out[crosses & (s0 > 0)] = -1
    return out


# ------------------------------------------------------------------ polygon validity (config)

Pt = Sequence[float]
MIN_POLYGON_AREA = 1e-6  # of the frame (normalised units): ~2 px on a 1920x1080 frame


def _orient(a: Pt, b: Pt, c: Pt) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a: Pt, b: Pt, p: Pt) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def segments_touch(a: Pt, b: Pt, c: Pt, d: Pt) -> bool:
    """True if segments ab and cd cross or touch (including collinear overlap)."""
    o1, o2, o3, o4 = _orient(a, b, c), _orient(a, b, d), _orient(c, d, a), _orient(c, d, b)
    if ((o1 > 0 and o2 < 0) or (o1 < 0 and o2 > 0)) and ((o3 > 0 and o4 < 0) or (o3 < 0 and o4 > 0)):
        return True
    return (
        (o1 == 0 and _on_segment(a, b, c))
        or (o2 == 0 and _on_segment(a, b, d))
        or (o3 == 0 and _on_segment(c, d, a))
        or (o4 == 0 and _on_segment(c, d, b))
    )


def polygon_problem(points: Sequence[Pt]) -> str | None:
    """Why a polygon is not a usable region (repeated point, an outline that crosses or touches
    itself, zero area), or None. Pts are numbered from 0 as in the YAML list."""
    n = len(points)
    for i in range(n):
        if tuple(points[i]) == tuple(points[(i + 1) % n]):
            return f"point {(i + 1) % n} repeats point {i}; remove the duplicate"
    for i in range(n):
        a, b = points[i], points[(i + 1) % n]
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                # Neighbouring edges share a point; they are wrong only if they fold back onto each other.
                shared = b if j == i + 1 else a
                p = a if j == i + 1 else b
                q = points[(j + 1) % n] if j == i + 1 else points[j]
                folds = _orient(p, shared, q) == 0 and (
                    (p[0] - shared[0]) * (q[0] - shared[0]) + (p[1] - shared[1]) * (q[1] - shared[1]) > 0
                )
                if folds and n > 3:
                    return f"the outline folds back on itself at point {(i + 1) % n if j == i + 1 else i}"
                continue
            c, d = points[j], points[(j + 1) % n]
            if segments_touch(a, b, c, d):
                return (
                    f"is self-intersecting: the edge from point {i} to {(i + 1) % n} crosses the edge from "
                    f"point {j} to {(j + 1) % n}; list the points in order around the outline"
                )
    if polygon_area(np.asarray(points, np.float64)) < MIN_POLYGON_AREA:
        return "has zero area (its points are collinear); a region must enclose part of the frame"
    return None


def to_pixels(points: Sequence[Sequence[float]] | np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised (0..1) points -> (N,2) pixels of a ``width`` x ``height`` frame."""
    return np.asarray(points, np.float64).reshape(-1, 2) * np.array([width, height], np.float64)


# ------------------------------------------------------------------------------- homography


def fit_homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 homography mapping (N,2) ``src`` to (N,2) ``dst`` (N >= 4), least squares by normalised DLT.

    Raises ValueError for too few or degenerate points (three or more on one line).
    """
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
    """Project (..., 2) points through the 3x3 homography ``h``; same leading shape out."""
    p = np.asarray(pts, np.float64)
    lead = p.shape[:-1]
    flat = p.reshape(-1, 2)
    ph = np.c_[flat, np.ones(len(flat))] @ h.T
    w = ph[:, 2:3]
    w = np.where(np.abs(w) < 1e-12, 1e-12, w)
    return (ph[:, :2] / w).reshape(*lead, 2)


class Homography:
    """Image pixels <-> ground metres for one camera at one frame size (a 3x3 matrix and its inverse)."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = np.asarray(matrix, np.float64).reshape(3, 3)
        self.inverse = np.linalg.inv(self.matrix)

    @classmethod
    def fit(cls, image_px: np.ndarray, ground_m: np.ndarray) -> Homography:
        """Least-squares fit from >= 4 point pairs (ValueError when degenerate)."""
        return cls(fit_homography(image_px, ground_m))

    def residuals_m(self, image_px: np.ndarray, ground_m: np.ndarray) -> np.ndarray:
        """(N,) distance in metres between each image point projected to the ground and its ground point."""
        return np.linalg.norm(self.to_ground(image_px) - np.asarray(ground_m, np.float64).reshape(-1, 2), axis=1)

    def to_ground(self, pts_px: np.ndarray) -> np.ndarray:
        """(..., 2) pixels -> (..., 2) metres."""
        return apply_homography(self.matrix, pts_px)

    def to_image(self, pts_m: np.ndarray) -> np.ndarray:
        return apply_homography(self.inverse, pts_m)

    def area_m2(self, polygon_px: np.ndarray) -> float:
        """Ground area of an image polygon (its vertices projected; edges stay straight under a homography)."""
        return polygon_area(self.to_ground(np.asarray(polygon_px, np.float64).reshape(-1, 2)))

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

    def scaled_from_unit(self, width: int, height: int) -> Homography:
        """This homography, fitted on normalised (0..1) image points, for pixels of a ``width`` x ``height`` frame."""
        return Homography(self.matrix @ np.diag([1.0 / width, 1.0 / height, 1.0]))
