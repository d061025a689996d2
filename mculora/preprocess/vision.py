"""Images, faces and short videos: user media -> RGB arrays -> the largest face's 478 face-mesh landmarks.

Conventions:

* Every image is a ``uint8`` RGB array ``[H, W, 3]``. Numpy arrays are taken to be RGB already (convert OpenCV's
  BGR arrays first). Transparent pixels are composited on white, the way a browser shows them on a plain page.
* Landmarks come from mediapipe's legacy face mesh (0.10.21 ships its models, so it runs offline) with
  ``refine_landmarks=True``: 468 mesh points plus 10 iris points. They are given in pixels of the image passed
  to `FaceFinder.find`, whatever resizing or padding detection used internally; z is mediapipe's relative depth
  in the same pixel scale as x.
* Detection only: images whose shorter side is below ``MIN_DETECTION_SIDE`` are upscaled first, because the face
  detector misses small faces (FER-2013's 48x48 crops). `FaceFinder` describes its fallback passes.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mculora.preprocess import UnusableInput

# Shorter side below this -> upscale before detection. On FER-2013, 192 px finds as many faces as 256 px.
MIN_DETECTION_SIDE = 192
MAX_FACES = 4  # faces the mesh looks for in one image; the largest is kept
MIN_CONFIDENCE = 0.5  # mediapipe's detection threshold
# Border added on each side, as a fraction of the shorter side, for the second detection pass.
RETRY_PAD_FRACTION = 0.25
# Smaller than this cannot hold a face worth reading; rejecting early gives a clearer reason than "no face".
MIN_IMAGE_SIDE = 16
# Larger images are refused from their header, before decoding: 50 MP covers every phone and most camera photos, and
# its RGB array (150 MB) stays affordable on a shared server; a 9000x9000 image or a decompression bomb does not.
MAX_IMAGE_PIXELS = 50_000_000
# OpenCV inside mediapipe aborts the whole process on an image side of 32,767 px or more. Detection pads by half the
# shorter side and upscales short images, so a side is held to 16,384 px and the sides to 10:1 (no face fills less).
MAX_IMAGE_SIDE = 16_384
MAX_ASPECT_RATIO = 10
# Side of the square searched round each full-range detection, as a multiple of the detected box's side.
DETECTION_WINDOW = 2.5
# Side of `Face.crop`, and how much wider than the landmarks' bounding box the crop is (forehead and chin margin).
CROP_SIZE = 224
CROP_MARGIN = 1.25
NUM_LANDMARKS = 478
# Video frames are shrunk to this longer side: plenty for a face, and 32 frames of 4K video would take 800 MB.
MAX_VIDEO_SIDE = 1280


def to_rgb(image: Any) -> np.ndarray:
    """A numpy array, PIL image or image file path -> ``uint8`` RGB ``[H, W, 3]``.

    Arrays may be grayscale ``[H, W]`` / ``[H, W, 1]``, RGB or RGBA; ``uint8``, ``uint16`` (16-bit PNGs), other
    integer types holding 0..255, or float. A float image whose maximum is at most 1 is read as [0, 1], otherwise
    as [0, 255]. Files are anything PIL reads (PNG, JPEG, WebP, ...), turned upright by their EXIF orientation.
    """
    if isinstance(image, str | os.PathLike):
        return _read_file(Path(image))
    if isinstance(image, Image.Image):
        return _from_pil(image)
    if isinstance(image, np.ndarray):
        return _from_array(image)
    raise UnusableInput(
        f"could not read image of type {type(image).__name__}: expected an array, a PIL image or a path"
    )


def _read_file(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UnusableInput(f"could not read image {path.name}: no such file")
    try:
        with Image.open(path) as opened:
            _check_pixels(*opened.size)
            # load() inside the try: PIL decodes lazily, so a truncated file only fails here.
            opened.load()
            upright = ImageOps.exif_transpose(opened)
            return _from_pil(upright)
    except UnusableInput:
        raise
    except Image.DecompressionBombError:
        # PIL refuses far larger images itself, from the header, before our own check sees them.
        raise UnusableInput(f"the image is too large: over {MAX_IMAGE_PIXELS // 1_000_000} megapixels") from None
    except UnidentifiedImageError:
        raise UnusableInput(f"could not read image {path.name}: not an image format this app reads") from None
    except (OSError, ValueError) as error:
        # Messages name the file only: an API caller has no business with the server's folders.
        reason = str(error).replace(str(path), path.name)
        raise UnusableInput(f"could not read image {path.name}: {reason}") from error


def _check_pixels(width: int, height: int) -> None:
    """Refuse, from the size alone, an image too large to decode or too elongated to search for a face."""
    if width * height > MAX_IMAGE_PIXELS or max(width, height) > MAX_IMAGE_SIDE:
        raise UnusableInput(
            f"the image is too large: {width}x{height} px, at most {MAX_IMAGE_PIXELS // 1_000_000} megapixels "
            f"and {MAX_IMAGE_SIDE:,} px on a side"
        )
    if max(width, height) > MAX_ASPECT_RATIO * max(1, min(width, height)):
        raise UnusableInput(
            f"the image is {width}x{height} px: too narrow to hold a face (sides more than {MAX_ASPECT_RATIO}:1)"
        )


def _from_pil(image: Image.Image) -> np.ndarray:
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        return _from_array(np.asarray(image.convert("RGBA")))
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # Wide grayscale modes: PIL's convert("RGB") would clip them; the array path rescales them instead.
        return _from_array(np.asarray(image))
    return _from_array(np.asarray(image.convert("RGB")))


def _from_array(array: np.ndarray) -> np.ndarray:
    if array.size == 0:
        raise UnusableInput(f"could not read image: the array is empty (shape {array.shape})")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise UnusableInput(
            f"could not read image: shape {array.shape} is not [H, W], [H, W, 1], [H, W, 3] or [H, W, 4]"
        )
    _check_pixels(array.shape[1], array.shape[0])
    if min(array.shape[:2]) < MIN_IMAGE_SIDE:
        raise UnusableInput(f"could not read image: {array.shape[1]}x{array.shape[0]} px is too small to hold a face")
    if array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        return np.ascontiguousarray(array)  # already what the detector takes (webcam frames, decoded files)
    values = _as_unit_range(array)
    if values.ndim == 2:
        values = np.repeat(values[:, :, None], 3, axis=2)
    elif values.shape[2] == 4:
        alpha = values[:, :, 3:]
        values = values[:, :, :3] * alpha + (1.0 - alpha)
    return np.ascontiguousarray(np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8))


def _as_unit_range(array: np.ndarray) -> np.ndarray:
    """Pixel values -> float32 in [0, 1], or UnusableInput for a dtype or range that is not an image."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype.kind in "iu":
        if array.min() < 0 or array.max() > 255:
            raise UnusableInput(
                f"could not read image: {array.dtype} values span {array.min()}..{array.max()}, not 0..255"
            )
        return array.astype(np.float32) / 255.0
    if array.dtype.kind == "f":
        values = array.astype(np.float32)
        if not np.isfinite(values).all():
            raise UnusableInput("could not read image: it holds NaN or infinite values")
        low, high = float(values.min()), float(values.max())
        scale = 1.0 if high <= 1.0 else 255.0
        # A little over/undershoot (from resampling) is normal; anything beyond is not an image in either range.
        if low < -0.05 * scale or high > 1.05 * scale:
            raise UnusableInput(f"could not read image: float values span {low:g}..{high:g}, not [0, 1] or [0, 255]")
        return np.clip(values / scale, 0.0, 1.0)
    raise UnusableInput(f"could not read image: unsupported pixel type {array.dtype}")


@dataclass(frozen=True)
class Face:
    """One detected face.

    ``landmarks``: float32 [478, 3], x and y in pixels of the image searched, z relative depth in x's scale.
    ``box``: (x0, y0, x1, y1), the landmarks' bounding box in pixels, clipped to the image.
    ``crop``: uint8 RGB [CROP_SIZE, CROP_SIZE, 3], an axis-aligned square ``CROP_MARGIN`` times the box's longer
    side, centred on the box; parts outside the image are black.
    ``image_size``: (width, height) of the image searched.
    ``faces_seen``: how many faces the pass that found this one saw (the largest is kept).
    """

    landmarks: np.ndarray
    box: tuple[int, int, int, int]
    crop: np.ndarray
    image_size: tuple[int, int]
    faces_seen: int = 1


class FaceFinder:
    """The largest face in an image, via one shared mediapipe FaceMesh (and a face detector as a fallback).

    Up to three passes, each tried only when the ones before found nothing:

    1. the face mesh on the whole image (upscaled when small);
    2. the same with a black border of ``RETRY_PAD_FRACTION`` round it, for faces that fill the frame;
    3. mediapipe's full-range face detector on the whole image, then the face mesh on a square window
       ``DETECTION_WINDOW`` times each detected box. The mesh's own detector is the short-range one and misses
       faces narrower than about 12% of the image; the full-range one finds them down to about 6%.

    The models are built on first use and reused (building them loads the models). mediapipe graphs are not
    thread-safe and a Gradio server calls from worker threads, so every use of them holds one lock.
    """

    def __init__(self) -> None:
        self._mesh: Any = None
        self._detector: Any = None
        self._lock = threading.Lock()

    def find(self, image: Any) -> Face:
        """The largest face in ``image`` (anything `to_rgb` takes); UnusableInput when there is none."""
        rgb = to_rgb(image)
        height, width = rgb.shape[:2]
        whole = _View.of(rgb, 0, 0, width, height)
        faces = self._faces_in(whole)
        if not faces:
            pad = round(RETRY_PAD_FRACTION * min(height, width))
            faces = self._faces_in(_View.of(rgb, -pad, -pad, width + 2 * pad, height + 2 * pad))
        if not faces:
            faces = [face for window in self._detected_windows(whole) for face in self._faces_in(window)]
        if not faces:
            raise UnusableInput("no face found in the image")
        largest = max(faces, key=lambda points: np.ptp(points[:, 0]) * np.ptp(points[:, 1]))
        return _make_face(rgb, largest, faces_seen=len(faces))

    def find_many(self, frames: Sequence[Any]) -> list[Face | None]:
        """`find` on each frame of a video; None where a frame is unusable or shows no face."""
        found: list[Face | None] = []
        for frame in frames:
            try:
                found.append(self.find(frame))
            except UnusableInput:
                found.append(None)
        return found

    def _faces_in(self, view: _View) -> list[np.ndarray]:
        """Every face mesh in ``view``, as float32 [478, 3] landmarks in pixels of the caller's image."""
        with self._lock:
            if self._mesh is None:
                # Imported here: mediapipe takes about half a second to import and most callers never need it.
                import mediapipe as mp

                self._mesh = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=True,
                    refine_landmarks=True,
                    max_num_faces=MAX_FACES,
                    min_detection_confidence=MIN_CONFIDENCE,
                )
            result = self._mesh.process(view.image)
        faces = []
        for face in result.multi_face_landmarks or []:
            normalised = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)
            if normalised.shape == (NUM_LANDMARKS, 3):
                faces.append(view.to_source(normalised))
        return faces

    def _detected_windows(self, view: _View) -> list[_View]:
        """Square views round the faces the full-range detector sees in ``view``, largest first."""
        with self._lock:
            if self._detector is None:
                import mediapipe as mp

                self._detector = mp.solutions.face_detection.FaceDetection(
                    model_selection=1, min_detection_confidence=MIN_CONFIDENCE
                )
            result = self._detector.process(view.image)
        boxes = []
        for detection in result.detections or []:
            box = detection.location_data.relative_bounding_box
            # Relative to the view, then into the caller's pixels like the landmarks.
            corner = view.to_source(np.array([[box.xmin, box.ymin, 0.0]], dtype=np.float32))[0]
            far = view.to_source(np.array([[box.xmin + box.width, box.ymin + box.height, 0.0]], dtype=np.float32))[0]
            boxes.append((corner[:2], far[:2]))
        boxes.sort(key=lambda box: -np.prod(box[1] - box[0]))
        windows = []
        for corner, far in boxes[:MAX_FACES]:
            side = max(1, round(DETECTION_WINDOW * max(far - corner)))
            centre = (corner + far) / 2
            left, top = (round(c - side / 2) for c in centre)
            windows.append(_View.of(view.source, left, top, side, side))
        return windows


@dataclass(frozen=True)
class _View:
    """A window of the caller's image as shown to mediapipe, resized; maps mediapipe's outputs back."""

    source: np.ndarray
    image: np.ndarray
    left: int
    top: int
    scale_x: float
    scale_y: float

    @classmethod
    def of(cls, rgb: np.ndarray, left: int, top: int, width: int, height: int) -> _View:
        """The window [left, left + width) x [top, top + height) of ``rgb``, upscaled when small."""
        window = _window(rgb, left, top, width, height)
        scale = max(1.0, MIN_DETECTION_SIDE / min(width, height))
        if scale > 1.0:
            size = (round(width * scale), round(height * scale))
            window = cv2.resize(window, size, interpolation=cv2.INTER_CUBIC)
        return cls(rgb, window, left, top, window.shape[1] / width, window.shape[0] / height)

    def to_source(self, normalised: np.ndarray) -> np.ndarray:
        """mediapipe's normalised [N, 3] points -> pixels of the caller's image.

        x and z are fractions of the view's width (mediapipe's convention), y of its height.
        """
        height, width = self.image.shape[:2]
        pixels = normalised * np.array([width / self.scale_x, height / self.scale_y, width / self.scale_x])
        return (pixels + np.array([self.left, self.top, 0.0])).astype(np.float32)


def _window(rgb: np.ndarray, left: int, top: int, width: int, height: int) -> np.ndarray:
    """The region [left, left + width) x [top, top + height) of ``rgb``; parts outside the image are black."""
    image_height, image_width = rgb.shape[:2]
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(image_width, left + width), min(image_height, top + height)
    if (x0, y0, x1, y1) == (left, top, left + width, top + height):
        return np.ascontiguousarray(rgb[y0:y1, x0:x1])
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    if x1 > x0 and y1 > y0:
        canvas[y0 - top : y1 - top, x0 - left : x1 - left] = rgb[y0:y1, x0:x1]
    return canvas


def crop_square(landmarks: np.ndarray) -> tuple[int, int, int]:
    """(left, top, side) in image pixels of the face crop: a square ``CROP_MARGIN`` times the landmarks' longer
    extent, centred on them, its corner rounded to whole pixels. `Face.crop` is this square resized."""
    x_min, y_min = landmarks[:, :2].min(axis=0)
    x_max, y_max = landmarks[:, :2].max(axis=0)
    side = max(1, round(CROP_MARGIN * float(max(x_max - x_min, y_max - y_min))))
    return round((x_min + x_max - side) / 2), round((y_min + y_max - side) / 2), side


def _make_face(rgb: np.ndarray, landmarks: np.ndarray, faces_seen: int = 1) -> Face:
    height, width = rgb.shape[:2]
    x_min, y_min = landmarks[:, :2].min(axis=0)
    x_max, y_max = landmarks[:, :2].max(axis=0)
    box = (
        max(0, math.floor(x_min)),
        max(0, math.floor(y_min)),
        min(width, math.ceil(x_max)),
        min(height, math.ceil(y_max)),
    )
    left, top, side = crop_square(landmarks)
    square = _window(rgb, left, top, side, side)
    # INTER_AREA when shrinking avoids aliasing; cubic when enlarging keeps small faces smooth.
    interpolation = cv2.INTER_AREA if side > CROP_SIZE else cv2.INTER_CUBIC
    crop = cv2.resize(square, (CROP_SIZE, CROP_SIZE), interpolation=interpolation)
    return Face(
        landmarks=landmarks.astype(np.float32), box=box, crop=crop, image_size=(width, height), faces_seen=faces_seen
    )


def read_video_frames(path: str | os.PathLike, fps: float = 2.0, max_frames: int = 32) -> list[np.ndarray]:
    """RGB frames of a short video taken every ``1 / fps`` seconds from the start, at most ``max_frames``.

    Sampling goes by each frame's timestamp, not by the container's frame rate: browser recordings (WebM from
    MediaRecorder) often report no or a wrong frame rate and have variable frame timing. A video longer than
    ``max_frames / fps`` seconds is cut there. Frames with a longer side above ``MAX_VIDEO_SIDE`` are shrunk to it.
    Reads whatever this OpenCV's FFmpeg decodes (MP4, WebM VP8/VP9, AVI).
    """
    if fps <= 0 or max_frames <= 0:
        raise ValueError(f"fps and max_frames must be positive, got {fps} and {max_frames}")
    path = Path(path)
    if not path.is_file():
        raise UnusableInput(f"could not read video {path.name}: no such file")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise UnusableInput(f"could not read video {path.name}: not a video format this OpenCV can decode")
        frames = _sample_frames(capture, fps, max_frames)
    finally:
        capture.release()
    if not frames:
        raise UnusableInput(f"could not read video {path.name}: no frame could be decoded")
    return frames


def _sample_frames(capture: cv2.VideoCapture, fps: float, max_frames: int) -> list[np.ndarray]:
    native_fps = capture.get(cv2.CAP_PROP_FPS)
    # Clock step for frames without a usable timestamp; 25 fps when the container does not say.
    frame_step = 1.0 / native_fps if math.isfinite(native_fps) and 0 < native_fps <= 1000 else 1.0 / 25.0
    frames: list[np.ndarray] = []
    next_time = 0.0
    time = -frame_step
    while len(frames) < max_frames and capture.grab():
        stamp = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        # Some streams report 0 or repeated timestamps; then step the clock by the frame rate instead.
        time = stamp if math.isfinite(stamp) and stamp > time else time + frame_step
        if time + 1e-6 < next_time:
            continue
        ok, bgr = capture.retrieve()
        if not ok or bgr is None or bgr.ndim != 3:
            continue
        shrink = MAX_VIDEO_SIDE / max(bgr.shape[:2])
        if shrink < 1.0:
            bgr = cv2.resize(bgr, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        # The next point of the 1/fps grid after this frame (a gap in the stream skips grid points, no burst).
        next_time = (math.floor(time * fps + 1e-6) + 1) / fps
    return frames
