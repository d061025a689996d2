"""Every face image as the run-time path sees it: the face mesh, then the network's 48x48 crop and the geometry.

The demo never shows the face network a raw FER-2013 image: it finds the face with the mesh (`FaceFinder`), cuts
`network_crop` from it and measures the geometry descriptor. Training the network on the same crops makes training
and serving see the same framing, and the cache lets every fold of the cross-fitted recipe reuse one mesh pass
(the mesh is most of a face's cost). Images without a face stay in the cache, marked not found: the path leaves
them out, and so do training and evaluation.

The cache is a folder of chunk files (ids, crops, descriptors, found); a run computes only the images it lacks.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mculora.encoders.face_geometry import DIM as GEOMETRY_DIM
from mculora.encoders.face_geometry import describe
from mculora.encoders.face_net import INPUT_SIZE, network_crop
from mculora.preprocess import UnusableInput
from mculora.recipes.sources import Item

TIMING_FILE = "seconds.txt"  # the wall time spent on the mesh, over the runs that filled the cache
CHUNK = 1000  # images per cache file: a stopped run loses at most one chunk's work


@dataclass
class FaceCrops:
    """Path crops of some face items, row i for ``ids[i]``."""

    ids: list[str]
    crops: np.ndarray  # uint8 [N, 48, 48]; zeros where no face was found
    geometry: np.ndarray  # float32 [N, GEOMETRY_DIM]; zeros where no face was found
    found: np.ndarray  # bool [N]

    def select(self, ids: Sequence[str]) -> FaceCrops:
        row = {item: i for i, item in enumerate(self.ids)}
        index = np.array([row[item] for item in ids], dtype=np.int64)
        return FaceCrops(list(ids), self.crops[index], self.geometry[index], self.found[index])


_finder = None  # one FaceFinder per worker process (mediapipe graphs are built once and reused)


def _crop_one(path: str) -> tuple[np.ndarray, np.ndarray, bool]:
    global _finder
    if _finder is None:
        from mculora.preprocess.vision import FaceFinder

        _finder = FaceFinder()
    try:
        face = _finder.find(path)
    except UnusableInput:
        return np.zeros((INPUT_SIZE, INPUT_SIZE), np.uint8), np.zeros(GEOMETRY_DIM, np.float32), False
    return network_crop(face), describe(face.landmarks), True


def path_crops(items: Sequence[Item], cache: Path, workers: int = 2) -> FaceCrops:
    """The path crops of the face ``items`` (in their order): read from ``cache``, the missing ones computed with
    ``workers`` processes and added to it."""
    cache.mkdir(parents=True, exist_ok=True)
    parts = []
    for file in sorted(cache.glob("*.npz")):
        stored = np.load(file)
        parts.append(FaceCrops(stored["ids"].tolist(), stored["crops"], stored["geometry"], stored["found"]))
    known = {item for part in parts for item in part.ids}
    todo = sorted((item for item in items if item.id not in known), key=lambda item: item.id)
    if todo:
        started = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for start in tqdm(range(0, len(todo), CHUNK), desc="face mesh crops", disable=None):
                chunk = todo[start : start + CHUNK]
                rows = pool.map(_crop_one, [str(item.path) for item in chunk], chunksize=25)
                crops, geometry, found = (np.stack(column) for column in zip(*rows, strict=True))
                ids = [item.id for item in chunk]
                np.savez(cache / f"{ids[0]}.npz", ids=np.array(ids), crops=crops, geometry=geometry, found=found)
                parts.append(FaceCrops(ids, crops, geometry, found))
        (cache / TIMING_FILE).write_text(f"{seconds_spent(cache) + time.perf_counter() - started}\n")
    if not parts:
        return FaceCrops(
            [], np.zeros((0, INPUT_SIZE, INPUT_SIZE), np.uint8), np.zeros((0, GEOMETRY_DIM)), np.zeros(0, bool)
        )
    merged = FaceCrops(
        [item for part in parts for item in part.ids],
        np.concatenate([part.crops for part in parts]),
        np.concatenate([part.geometry for part in parts]),
        np.concatenate([part.found for part in parts]),
    )
    return merged.select([item.id for item in items])


def seconds_spent(cache: Path) -> float:
    """The wall time the mesh pass took to fill ``cache``, over every run that added to it."""
    timing = cache / TIMING_FILE
    return float(timing.read_text()) if timing.is_file() else 0.0
