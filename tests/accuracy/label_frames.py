"""Labelling helper: contact sheets of a video's frames with a grid, to count people by eye.

    .venv/bin/python -m tests.accuracy.label_frames VIDEO --every 2 --out /tmp/sheets [--zone x1,y1,x2,y2]

Writes ``sheet_NN.png`` files, each a grid of frames (``--cols`` x ``--rows``) taken every ``--every``
seconds of video time; every frame carries its time stamp in seconds, a 10 x 10 grid with
normalised coordinates (0.1 steps) and, with ``--zone``, the zone rectangle being labelled (normalised).
Look at the sheets, write one line ``t_s,zone,class,count`` per frame into the label CSV, and say in
docs/accuracy.md how the set was labelled. The frames are written to a scratch folder, never into the
repository (the media carry no licence to be copied here).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np


def frames_every(path: str, every_s: float, start_s: float = 0.0, end_s: float | None = None):
    """(t_s, BGR image) of the frame nearest each multiple of ``every_s`` seconds of video time."""
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise SystemExit(f"{path}: cannot be opened by OpenCV")
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    i = 0
    next_t = start_s
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                return
            t = i / fps
            i += 1
            if end_s is not None and t > end_s + 1e-9:
                return
            if t + 0.5 / fps >= next_t:
                yield round(t, 3), image
                next_t += every_s
    finally:
        cap.release()


def draw_grid(image: np.ndarray, t_s: float, zone: tuple[float, float, float, float] | None) -> np.ndarray:
    out = image.copy()
    h, w = out.shape[:2]
    for k in range(1, 10):
        x, y = int(w * k / 10), int(h * k / 10)
        cv2.line(out, (x, 0), (x, h), (200, 200, 200), 1)
        cv2.line(out, (0, y), (w, y), (200, 200, 200), 1)
        cv2.putText(out, f".{k}", (x + 2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 0), 1)
        cv2.putText(out, f".{k}", (2, y - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 0), 1)
    if zone is not None:
        x1, y1, x2, y2 = zone
        cv2.rectangle(out, (int(x1 * w), int(y1 * h)), (int(x2 * w) - 1, int(y2 * h) - 1), (0, 0, 255), 2)
    cv2.rectangle(out, (0, h - 26), (120, h), (0, 0, 0), -1)
    cv2.putText(out, f"t={t_s:.1f}s", (4, h - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("video")
    p.add_argument("--every", type=float, default=2.0, help="seconds of video between frames (default 2)")
    p.add_argument("--start", type=float, default=0.0)
    p.add_argument("--end", type=float, default=None)
    p.add_argument("--cols", type=int, default=3)
    p.add_argument("--rows", type=int, default=3)
    p.add_argument("--width", type=int, default=640, help="width of each frame on the sheet (px)")
    p.add_argument("--zone", default=None, help="x1,y1,x2,y2 normalised rectangle to draw")
    p.add_argument("--out", required=True, help="scratch folder for the sheets (not the repository)")
    a = p.parse_args(argv)
    zone = tuple(float(v) for v in a.zone.split(",")) if a.zone else None
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tiles: list[np.ndarray] = []
    sheet = 0

    def flush() -> None:
        nonlocal sheet, tiles
        if not tiles:
            return
        blank = np.zeros_like(tiles[0])
        tiles += [blank] * (a.cols * a.rows - len(tiles))
        rows = [np.hstack(tiles[r * a.cols : (r + 1) * a.cols]) for r in range(a.rows)]
        cv2.imwrite(str(out / f"sheet_{sheet:02d}.png"), np.vstack(rows))
        sheet += 1
        tiles = []

    for t, image in frames_every(a.video, a.every, a.start, a.end):
        h, w = image.shape[:2]
        small = cv2.resize(draw_grid(image, t, zone), (a.width, int(h * a.width / w)), interpolation=cv2.INTER_AREA)
        tiles.append(small)
        if len(tiles) == a.cols * a.rows:
            flush()
    flush()
    print(f"wrote {sheet} sheet(s) to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
