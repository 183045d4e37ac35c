"""PNG, JPEG and GIF: decode with Pillow, re-encode the pixels, keep nothing else.

Re-encoding drops EXIF/GPS, XMP, ICC profiles, comments, PNG text chunks and any bytes
appended after the image (polyglot payloads). The EXIF orientation is applied to the
pixels first, otherwise phone photos would come out sideways once the tag is gone.
SVG is not an image here (it is XML that can carry script); ``detect`` refuses it.
"""

from __future__ import annotations

import io
import warnings
from collections import Counter

from PIL import Image, ImageOps, ImageSequence

from sanitizer.errors import Code, Refused
from sanitizer.limits import Limits
from sanitizer.report import Rebuilt, Removed, counter

PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF"}

# Metadata keys Pillow exposes in ``Image.info``; seeing any means something was stripped.
_METADATA_KEYS = frozenset({"exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "comment", "photoshop"})
# The end markers decide whether bytes trail the image, only for reporting: the
# re-encode drops trailing bytes whether or not this notices them.
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"
_GIF_END = b";"


def _check_dimensions(im: Image.Image, limits: Limits, frames: int = 1) -> None:
    width, height = im.size
    if width <= 0 or height <= 0:
        raise Refused(Code.IMAGE_MALFORMED, "zero-sized image")
    if max(width, height) > limits.max_image_side or width * height * frames > limits.max_image_pixels:
        raise Refused(Code.IMAGE_TOO_LARGE, "pixel count over limit")


def _had_trailing_data(untrusted: bytes, kind: str) -> bool:
    end = {"png": _PNG_END, "jpeg": _JPEG_END, "gif": _GIF_END}[kind]
    return not untrusted.rstrip(b"\x00").endswith(end)


def _had_metadata(im: Image.Image) -> bool:
    if any(key in im.info for key in _METADATA_KEYS):
        return True
    # PNG tEXt/iTXt/zTXt chunks land in ``text`` (and in info under their keywords).
    return bool(getattr(im, "text", None))


def _frames(im: Image.Image, limits: Limits) -> list[Image.Image]:
    """All frames of an animated GIF as independent images, bounded by ``max_gif_frames``."""
    frames: list[Image.Image] = []
    for frame in ImageSequence.Iterator(im):
        if len(frames) >= limits.max_gif_frames:
            raise Refused(Code.IMAGE_TOO_LARGE, "too many frames")
        frames.append(frame.copy())
    _check_dimensions(im, limits, frames=len(frames))
    return frames


def _encode_gif(im: Image.Image, limits: Limits) -> bytes:
    frames = _frames(im, limits)
    durations = [int(frame.info.get("duration", 100)) for frame in frames]
    loop = im.info.get("loop")
    transparency = im.info.get("transparency")
    for frame in frames:
        frame.info = {}
    out = io.BytesIO()
    options: dict[str, object] = {}
    if len(frames) > 1:
        options.update(save_all=True, append_images=frames[1:], duration=durations)
        if isinstance(loop, int):
            options["loop"] = loop
    if isinstance(transparency, int):
        options["transparency"] = transparency
    frames[0].save(out, format="GIF", **options)
    return out.getvalue()


def _encode_still(im: Image.Image, kind: str, keep_jpeg_tables: bool) -> bytes:
    transparency = im.info.get("transparency") if kind == "png" else None
    progressive = bool(im.info.get("progressive") or im.info.get("progression"))
    # Pillow's encoders fall back to ``im.info`` for some metadata (JPEG comment, PNG ICC);
    # an empty info dict guarantees none of it is written.
    im.info = {}
    out = io.BytesIO()
    if kind == "jpeg":
        if keep_jpeg_tables:
            # "keep" reuses the source quantisation tables: no loss beyond one decode/encode.
            im.save(out, format="JPEG", quality="keep", subsampling="keep", progressive=progressive)
        else:
            clean = im if im.mode in ("L", "RGB", "CMYK") else im.convert("RGB")
            clean.save(out, format="JPEG", quality=92, progressive=progressive)
    else:
        options: dict[str, object] = {"compress_level": 6}
        if transparency is not None:
            options["transparency"] = transparency
        im.save(out, format="PNG", **options)
    return out.getvalue()


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF means "no orientation"; EXIF is dropped anyway
        return 1
    return value if isinstance(value, int) else 1


def rebuild_image(untrusted: bytes, limits: Limits, kind: str) -> Rebuilt:
    """Decode and re-encode a PNG, JPEG or GIF.

    Args:
        untrusted: the uploaded bytes.
        limits: pixel, side and frame limits.
        kind: ``"png"``, ``"jpeg"`` or ``"gif"`` as detected; the decoder is pinned to it.

    Returns:
        The re-encoded image; ``removed`` notes metadata and trailing data.

    Raises:
        Refused: ``IMAGE_MALFORMED`` or ``IMAGE_TOO_LARGE``.
    """
    removed: Counter[Removed] = counter()
    fmt = PIL_FORMATS[kind]
    # warnings.catch_warnings mutates process-wide state; rebuilders run one per
    # worker process, so that is acceptable here. Bomb warnings become refusals; the
    # rest (odd EXIF, odd chunks) concern metadata we throw away anyway.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(untrusted), formats=[fmt]) as im:
                if im.format != fmt:
                    raise Refused(Code.IMAGE_MALFORMED, "decoder disagrees with detection")
                _check_dimensions(im, limits)
                if _had_metadata(im):
                    removed[Removed.METADATA] += 1
                if kind == "gif":
                    data = _encode_gif(im, limits)
                else:
                    im.load()
                    if _orientation(im) in range(2, 9):
                        upright = ImageOps.exif_transpose(im)
                        data = _encode_still(upright, kind, keep_jpeg_tables=False)
                    else:
                        data = _encode_still(im, kind, keep_jpeg_tables=kind == "jpeg")
        except Refused:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise Refused(Code.IMAGE_TOO_LARGE, "decompression bomb") from exc
        except (OSError, SyntaxError, ValueError, TypeError, IndexError, KeyError, EOFError) as exc:
            # Pillow signals corrupt input through all of these.
            raise Refused(Code.IMAGE_MALFORMED, "decoder error") from exc
    if _had_trailing_data(untrusted, kind):
        removed[Removed.TRAILING_DATA] += 1
    return Rebuilt(data=data, kind=kind, removed=removed)
