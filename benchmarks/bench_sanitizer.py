"""Sanitizer throughput next to the raw libraries, measured in the same run.

Run: ``python benchmarks/bench_sanitizer.py [--quick]``. Prints a table, then JSON.

- PDF pages/s: generated 100-page PDFs (text pages, and "scanned" pages with one JPEG
  each), raw ``pikepdf.open`` + ``save`` versus the sanitizer in-process (rebuild and
  verify, no isolation) and through the pool (a forked, confined child rebuilds; a
  second child verifies). All sequential, one file at a time, medians.
- XLSX rows/s: a generated workbook, raw openpyxl ``load_workbook`` + ``save`` versus
  the sanitizer.
- Small files/s through the worker pool sized to 2 workers, isolation intact.

Targets (issue 3): sanitizer PDF pages/s >= 0.5 x raw on 100-page PDFs; >= 50 small
files/s through the pool on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openpyxl  # noqa: E402
import pikepdf  # noqa: E402
from PIL import Image  # noqa: E402

from sanitizer.core import rebuild_untrusted, verify_untrusted  # noqa: E402
from sanitizer.libmagic import Detector  # noqa: E402
from sanitizer.limits import Limits  # noqa: E402
from sanitizer.pool import SanitizerPool  # noqa: E402

PAGE_TEXT = "\n".join(
    f"BT /F1 10 Tf 56 {780 - 14 * line} Td (Line {line}: reiwa budget item, amount {line * 1234} yen) Tj ET"
    for line in range(50)
)


def make_pdf(pages: int, seed: int) -> bytes:
    """A text PDF with ``pages`` pages (about 50 lines each) and a page-level link."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica
        )
    )
    for number in range(pages):
        page = pdf.add_blank_page(page_size=(595, 842))
        page.obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        page.obj.Contents = pdf.make_stream(f"% {seed} {number}\n{PAGE_TEXT}".encode())
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def make_scanned_pdf(pages: int, seed: int) -> bytes:
    """A "scanned" PDF: one 600x800 greyscale JPEG (about 150 KB) per page, ~15 MB in all."""
    image = Image.effect_noise((600, 800), 40).convert("L")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=50)
    jpeg = buffer.getvalue()
    pdf = pikepdf.new()
    for number in range(pages):
        page = pdf.add_blank_page(page_size=(595, 842))
        xobject = pdf.make_stream(
            jpeg + bytes([(seed + number) % 256]), Type=pikepdf.Name.XObject, Subtype=pikepdf.Name.Image,
            Width=600, Height=800, ColorSpace=pikepdf.Name.DeviceGray, BitsPerComponent=8,
            Filter=pikepdf.Name.DCTDecode,
        )  # fmt: skip
        page.obj.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=xobject))
        page.obj.Contents = pdf.make_stream(b"q 595 0 0 842 0 0 cm /Im0 Do Q")
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def make_xlsx(rows: int, columns: int = 10) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "予算"
    sheet.append([f"列{c}" for c in range(columns)])
    for r in range(rows):
        sheet.append([r * c if c % 3 else f"項目{r}-{c}" for c in range(columns - 1)] + [f"=A{r + 2}*2"])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def small_files() -> list[tuple[bytes, str]]:
    png = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(png, format="PNG")
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 200, 30)).save(jpeg, format="JPEG")
    return [
        (make_pdf(1, 0), "one-page.pdf"),
        (png.getvalue(), "image.png"),
        (jpeg.getvalue(), "photo.jpg"),
        ("氏名,金額\r\n山田,=1+1\r\n".encode("cp932"), "list.csv"),
        ("お知らせ\n".encode(), "note.txt"),
        (make_xlsx(20), "small.xlsx"),
    ]


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall seconds of ``repeat`` calls."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def raw_pdf(data: bytes) -> None:
    with pikepdf.open(io.BytesIO(data)) as pdf:
        pdf.save(io.BytesIO())


def raw_xlsx(data: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        openpyxl.load_workbook(io.BytesIO(data)).save(io.BytesIO())


async def through_pool(pool: SanitizerPool, data: bytes, name: str) -> None:
    result = await pool.sanitize(data, name)
    if not result.rebuilt:
        raise RuntimeError(f"benchmark input refused: {result.report.code} {result.report.detail}")


async def pdf_figures(
    pool: SanitizerPool, pdfs: list[bytes], repeat: int, detector: Detector
) -> dict[str, object]:
    """pages/s for raw pikepdf, the in-process rebuild+verify, and the isolated pool."""
    limits = pool.limits
    raw_s = statistics.median(timed(lambda d=d: raw_pdf(d), repeat) for d in pdfs)

    def in_process(data: bytes) -> None:
        outcome = rebuild_untrusted(data, "a.pdf", limits, detector)
        assert outcome.data is not None
        verify_untrusted(outcome.data, "pdf", limits, detector)

    inproc_s = statistics.median(timed(lambda d=d: in_process(d), repeat) for d in pdfs)
    pool_s = []
    for data in pdfs:
        for _ in range(repeat):
            started = time.perf_counter()
            await through_pool(pool, data, "report.pdf")
            pool_s.append(time.perf_counter() - started)
    sanitizer_s = statistics.median(pool_s)
    started = time.perf_counter()
    await asyncio.gather(*(through_pool(pool, d, "report.pdf") for d in pdfs * repeat))
    concurrent_pages = 100 * len(pdfs) * repeat / (time.perf_counter() - started)
    return {
        "pages_per_file": 100,
        "mb_per_file": round(len(pdfs[0]) / 1e6, 2),
        "raw_pikepdf_pages_per_s": round(100 / raw_s, 1),
        "sanitizer_in_process_pages_per_s": round(100 / inproc_s, 1),
        "sanitizer_pool_pages_per_s": round(100 / sanitizer_s, 1),
        "sanitizer_pool_2_files_at_a_time_pages_per_s": round(concurrent_pages, 1),
        "ratio_pool_vs_raw": round(raw_s / sanitizer_s, 3),
        "ratio_in_process_vs_raw": round(raw_s / inproc_s, 3),
        "pool_overhead_ms_per_file": round((sanitizer_s - inproc_s) * 1000, 1),
        "target_ratio": 0.5,
    }


async def measure(quick: bool) -> dict[str, object]:
    repeat = 3 if quick else 7
    rows = 2_000 if quick else 20_000
    workbook = make_xlsx(rows)
    detector = Detector()
    limits = Limits()
    results: dict[str, object] = {}
    async with SanitizerPool(limits, workers=2) as pool:
        text_pdfs = [make_pdf(100, seed) for seed in range(3)]
        await through_pool(pool, text_pdfs[0], "warm.pdf")  # warm the fork server once
        results["pdf_text"] = await pdf_figures(pool, text_pdfs, repeat, detector)
        results["pdf_scanned"] = await pdf_figures(
            pool, [make_scanned_pdf(100, s) for s in range(2)], repeat, detector
        )

        xlsx_repeat = max(2, repeat // 2)
        raw_x = timed(lambda: raw_xlsx(workbook), xlsx_repeat)
        inproc_x = timed(lambda: rebuild_untrusted(workbook, "a.xlsx", limits, detector), xlsx_repeat)
        pool_x = []
        for _ in range(xlsx_repeat):
            started = time.perf_counter()
            await through_pool(pool, workbook, "budget.xlsx")
            pool_x.append(time.perf_counter() - started)
        sanitizer_x = statistics.median(pool_x)
        results["xlsx"] = {
            "rows": rows,
            "columns": 10,
            "raw_openpyxl_rows_per_s": round(rows / raw_x, 1),
            "sanitizer_in_process_rows_per_s": round(rows / inproc_x, 1),
            "sanitizer_pool_rows_per_s": round(rows / sanitizer_x, 1),
            "ratio_pool_vs_raw": round(raw_x / sanitizer_x, 3),
        }

        smalls = small_files()
        batch = smalls * (20 if quick else 60)
        started = time.perf_counter()
        await asyncio.gather(*(through_pool(pool, data, name) for data, name in batch))
        elapsed = time.perf_counter() - started
        results["small_files"] = {
            "files": len(batch),
            "mix": sorted({name for _, name in smalls}),
            "workers": pool.workers,
            "files_per_s": round(len(batch) / elapsed, 1),
            "target_files_per_s": 50,
            "isolation": pool.isolation,
        }
    results["machine"] = {
        "cpus_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "pikepdf": pikepdf.__version__,
        "qpdf": pikepdf.__libqpdf_version__,
        "openpyxl": openpyxl.__version__,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    return results


def print_table(results: dict[str, object]) -> None:
    rows: list[tuple[str, str, str]] = []
    for key, label in (("pdf_text", "PDF 100 text pages"), ("pdf_scanned", "PDF 100 scanned pages")):
        pdf = results[key]
        assert isinstance(pdf, dict)
        rows += [
            (f"{label} ({pdf['mb_per_file']} MB): raw pikepdf open+save", f"{pdf['raw_pikepdf_pages_per_s']} pages/s", ""),
            ("  sanitizer in-process (rebuild + verify, no isolation)", f"{pdf['sanitizer_in_process_pages_per_s']} pages/s",
             f"x{pdf['ratio_in_process_vs_raw']} of raw"),
            ("  sanitizer via pool (rebuild child + verify child)", f"{pdf['sanitizer_pool_pages_per_s']} pages/s",
             f"x{pdf['ratio_pool_vs_raw']} of raw (target >= 0.5); +{pdf['pool_overhead_ms_per_file']} ms/file"),
            ("  pool, 2 files at a time", f"{pdf['sanitizer_pool_2_files_at_a_time_pages_per_s']} pages/s", ""),
        ]  # fmt: skip
    xlsx, small = results["xlsx"], results["small_files"]
    assert isinstance(xlsx, dict) and isinstance(small, dict)
    rows += [
        (f"XLSX {xlsx['rows']} rows x 10: raw openpyxl load+save", f"{xlsx['raw_openpyxl_rows_per_s']} rows/s", ""),
        ("  sanitizer in-process", f"{xlsx['sanitizer_in_process_rows_per_s']} rows/s", ""),
        ("  sanitizer via pool", f"{xlsx['sanitizer_pool_rows_per_s']} rows/s", f"x{xlsx['ratio_pool_vs_raw']} of raw"),
        (f"small files via pool ({small['workers']} workers)", f"{small['files_per_s']} files/s", "target >= 50"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'result':>18}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>18}  {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and a smaller workbook")
    args = parser.parse_args()
    results = asyncio.run(measure(args.quick))
    print_table(results)
    print(json.dumps(results, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
