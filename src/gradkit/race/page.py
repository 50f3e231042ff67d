"""The race as one self-contained HTML page (no network): contours, a learning-rate slider per optimizer,
play/pause and live step counters, with the trajectories of the whole learning-rate grid embedded as JSON.

The page shades the log-loss field smoothly and traces its contour lines as vectors (marching squares
with linear interpolation), so they stay smooth at any size; it draws axes in the landscape's
coordinates and says of each run whether it converged, diverged or did not converge.

Coordinates are stored as integers: thousandths of the plotting box, delta-encoded along each path (a
path that has stopped moving costs two characters a step), so every step is kept and zigzags survive.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from gradkit.race.engine import RaceResult, escape_box
from gradkit.race.plots import surface

QUANTUM = 1000  # steps per box width
SURFACE_SIZE = 200  # the loss field is SURFACE_SIZE x SURFACE_SIZE values; the page traces vector contours in it
LEVELS = 1000  # log-loss levels stored per grid value (0 = lowest)


def encode_path(points: np.ndarray, bounds: np.ndarray) -> list[int]:
    """``[qx0, qy0, dqx1, dqy1, ...]``: points in thousandths of the box, first absolute then deltas."""
    lo, width = bounds[:, 0], bounds[:, 1] - bounds[:, 0]
    q = np.rint((points - lo) / width * QUANTUM).astype(np.int64)
    q = np.concatenate([q[:1], np.diff(q, axis=0)])
    return q.reshape(-1).tolist()


def decode_path(code: Sequence[int], bounds: np.ndarray) -> np.ndarray:
    """The inverse of ``encode_path`` up to the quantum (used by the tests; the page does it in JS)."""
    q = np.cumsum(np.asarray(code, np.float64).reshape(-1, 2), axis=0)
    lo, width = bounds[:, 0], bounds[:, 1] - bounds[:, 0]
    return lo + q / QUANTUM * width


def page_data(results: Sequence[RaceResult], lr_index: Sequence[Sequence[int]], colours: Sequence[str]) -> dict:
    """The JSON the page draws from: per landscape its contour levels and, per optimizer, every lr's path."""
    landscapes = []
    for r, chosen in zip(results, lr_index):
        bounds = np.asarray(r.landscape.bounds, np.float64)
        _, _, z = surface(r, SURFACE_SIZE)
        logz = np.log10(z - min(float(z.min()), 0.0) + 1e-3)
        levels = np.rint((logz - logz.min()) / max(np.ptp(logz), 1e-12) * (LEVELS - 1)).astype(int)
        racers = []
        for i, name in enumerate(r.names):
            racers.append(
                {
                    "label": name,
                    "colour": colours[i],
                    "lrs": [float(f"{lr:.4g}") for lr in r.learning_rates[i]],
                    "index": int(chosen[i]),
                    "converged": r.converged_at[i].tolist(),
                    "diverged": r.diverged_at[i].tolist(),
                    "final": [float(f"{v:.4g}") for v in r.losses[i, :, -1]],
                    "paths": [encode_path(r.paths[i, j], bounds) for j in range(r.paths.shape[1])],
                }
            )
        landscapes.append(
            {
                "name": r.landscape.name,
                "bounds": bounds.tolist(),
                "escape": escape_box(r.landscape).tolist(),
                "start": list(r.landscape.start),
                "minima": [list(m) for m in r.landscape.minima],
                "steps": int(r.paths.shape[2] - 1),
                "tol": r.tol,
                "surface": {"size": SURFACE_SIZE, "levels": LEVELS, "values": levels.reshape(-1).tolist()},
                "racers": racers,
            }
        )
    return {"quantum": QUANTUM, "landscapes": landscapes}


def write_page(
    results: Sequence[RaceResult], lr_index: Sequence[Sequence[int]], colours: Sequence[str], path: str | Path
) -> Path:
    """Write the page for ``results`` (one per landscape); ``lr_index[k][i]`` is optimizer i's starting slider.

    Open it from disk; ``#step=N`` opens paused at step N (``#step=end`` at the last), ``#landscape=NAME``
    on that landscape (combine them: ``#landscape=rosenbrock&step=end``), ``#selftest``
    checks that moving a slider redraws the paths and writes the verdict into ``<pre id="selftest">``.
    """
    template = resources.files("gradkit.race").joinpath("page.html").read_text(encoding="utf-8")
    data = json.dumps(page_data(results, lr_index, colours), separators=(",", ":"))
    # "</" cannot end the script early inside JSON strings when escaped this way.
    html = template.replace("/*RACE_DATA*/null", data.replace("</", "<\\/"))
    out = Path(path)
    out.write_text(html, encoding="utf-8")
    return out


__all__ = ["decode_path", "encode_path", "page_data", "write_page"]
