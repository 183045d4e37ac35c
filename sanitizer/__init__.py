"""無害化 (content disarm and reconstruction) for files entering LGWAN.

Every accepted file is rebuilt, never passed through: PDF with pikepdf, Word and
PowerPoint from an allow-list of package parts, Excel through openpyxl, images through
Pillow, text and CSV re-encoded as UTF-8. Anything the allow-lists do not know is
refused with a stable code (``errors.Code``) and a Japanese/English message.

Parsing happens only in confined child processes (``pool.SanitizerPool``); the
rebuilders themselves are pure functions over bytes and can be called directly in tests.

Public API::

    from sanitizer import Limits, SanitizerPool, sanitize_file

    async with SanitizerPool(Limits()) as pool:
        result = await pool.sanitize(data, "申請書.docx")
        if result.rebuilt:
            store(result.data, result.report.output_name)
"""

from __future__ import annotations

from sanitizer.errors import Code
from sanitizer.limits import Limits
from sanitizer.pool import Result, SanitizerPool, sanitize_file
from sanitizer.report import Removed, Report

__all__ = ["Code", "Limits", "Removed", "Report", "Result", "SanitizerPool", "sanitize_file"]
