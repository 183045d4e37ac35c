"""The resource limits one sanitizer job runs under, passed explicitly (never read from globals).

Defaults come from :mod:`shared.limits` where a project-wide constant exists, so the
upload handler and the sanitizer agree on what "too big" means (STYLE rule 11).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from shared.limits import MAX_CSV_IMPORT_BYTES, MAX_PDF_PAGES, MAX_UPLOAD_BYTES, MAX_XLSX_CELLS

_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard limits for one file.

    Attributes:
        max_input_bytes: largest accepted upload.
        max_output_bytes: largest rebuilt file the parent will accept back from a worker.
        max_pdf_pages: PDFs with more pages are refused.
        max_pdf_objects: PDFs with more indirect objects are refused (object-count bombs).
        max_xlsx_cells: workbooks with more stored cells are refused before openpyxl loads them.
        max_zip_entries: OOXML packages with more members are refused.
        max_zip_total_bytes: sum of uncompressed member sizes (declared and actual).
        max_zip_member_bytes: uncompressed size of any single member.
        max_zip_ratio: uncompressed/compressed ratio allowed for a member larger than
            ``zip_ratio_floor_bytes`` (small members compress absurdly well and are harmless).
        zip_ratio_floor_bytes: members below this uncompressed size skip the ratio check.
        max_image_pixels: width x height (x frames) of one image.
        max_image_side: longest side in pixels.
        max_gif_frames: frames in one animated GIF.
        max_text_bytes: text and CSV files.
        cpu_seconds: RLIMIT_CPU of the worker process (soft; hard is one second more).
        memory_bytes: RLIMIT_AS of the worker process (address space, not RSS).
        wall_seconds: the parent kills the worker's process group after this long.
        file_bytes: RLIMIT_FSIZE; openpyxl spools worksheets through temporary files.
    """

    max_input_bytes: int = MAX_UPLOAD_BYTES
    max_output_bytes: int = 2 * MAX_UPLOAD_BYTES
    max_pdf_pages: int = MAX_PDF_PAGES
    max_pdf_objects: int = 1_000_000
    max_xlsx_cells: int = MAX_XLSX_CELLS
    max_zip_entries: int = 5_000
    max_zip_total_bytes: int = 1024 * _MIB
    max_zip_member_bytes: int = 512 * _MIB
    max_zip_ratio: int = 200
    zip_ratio_floor_bytes: int = 4 * _MIB
    max_image_pixels: int = 50_000_000
    max_image_side: int = 20_000
    max_gif_frames: int = 500
    max_text_bytes: int = MAX_CSV_IMPORT_BYTES
    cpu_seconds: int = 120
    memory_bytes: int = 4096 * _MIB
    wall_seconds: float = 180.0
    file_bytes: int = 1024 * _MIB

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"Limits.{f.name} must be a positive number")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, used to hand the limits to the fork server."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Limits:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing keys take defaults."""
        names = {f.name for f in fields(cls)}
        unknown = set(raw) - names
        if unknown:
            raise ValueError(f"unknown limit(s): {sorted(unknown)}")
        return cls(**raw)


def limits_from_cli(timeout: float | None, cpu_seconds: int | None, memory_mb: int | None) -> Limits:
    """The defaults with the command line's ``--timeout``, ``--cpu-seconds`` and ``--memory-mb``
    (``ValueError`` if one is out of range)."""
    overrides: dict[str, Any] = {}
    if timeout is not None:
        overrides["wall_seconds"] = timeout
    if cpu_seconds is not None:
        overrides["cpu_seconds"] = cpu_seconds
    if memory_mb is not None:
        overrides["memory_bytes"] = memory_mb * 1024 * 1024
    return Limits(**overrides)
