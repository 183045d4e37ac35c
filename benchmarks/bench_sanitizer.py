"""Sanitizer throughput next to the raw libraries, measured in the same run.

Run: ``python benchmarks/bench_sanitizer.py [--quick]``. Prints a table, then JSON.

Everything compared is measured *interleaved*: raw, then sanitizer, on the same file,
round after round, so load from other processes on a shared machine hits both alike.
Figures are medians over files x rounds.

- PDF pages/s on generated 100-page PDFs (text pages; "scanned" pages with one JPEG
  each, 15 MB):
  - raw: ``pikepdf.open(BytesIO)`` + ``save(BytesIO)`` in this warm process;
  - sanitizer in-process: rebuild + verify, no isolation;
  - sanitizer through the pool, one file at a time (the headline ratio): a fresh,
    confined child forked by the fork server rebuilds the file, a second fresh child
    verifies it. The fork server replaces used children and reaps finished ones on the
    other core meanwhile, so CPU per file is reported too: this process plus the fork
    server and all its children, against raw's CPU;
  - reference: raw open+save in a freshly forked child per file (no confinement, no
    verify): what a new process alone costs here, timed from fork to reap, and with
    the child forked ahead and its exit off the clock (as the pool does it).
- 2 files at a time: the pool sized to 2 workers against raw in 2 warm processes.
- XLSX rows/s: openpyxl ``load_workbook`` + ``save`` against the pool.
- Small files/s through the pool sized to 2 workers, isolation intact.

Targets (issue 3): sanitizer PDF pages/s >= 0.5 x raw on 100-page PDFs; >= 50 small
files/s through the pool on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openpyxl  # noqa: E402
import pikepdf  # noqa: E402
from PIL import Image  # noqa: E402

from sanitizer.core import rebuild_untrusted, verify_untrusted  # noqa: E402
from sanitizer.libmagic import Detector  # noqa: E402
from sanitizer.limits import Limits  # noqa: E402
from sanitizer.pool import SanitizerPool  # noqa: E402

PAGES = 100
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


def raw_pdf(data: bytes) -> None:
    with pikepdf.open(io.BytesIO(data)) as pdf:
        pdf.save(io.BytesIO())


def raw_xlsx(data: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        openpyxl.load_workbook(io.BytesIO(data)).save(io.BytesIO())


# ------------------------------------------------------------------ raw in other processes

# The PDFs, made before the raw worker processes are forked (they inherit them).
FILES: dict[str, list[bytes]] = {}


def _raw_task(kind: str, index: int) -> float:
    """In a raw worker process: one raw open+save; returns its wall seconds."""
    started = time.perf_counter()
    raw_pdf(FILES[kind][index])
    return time.perf_counter() - started


def _fresh_child_task(kind: str, index: int) -> float:
    """In a raw worker process: fork a child that does one raw open+save; fork-to-reap seconds."""
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            raw_pdf(FILES[kind][index])
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return time.perf_counter() - started


def _preforked_child_task(kind: str, index: int) -> float:
    """In a raw worker process: fork a child, wait until it is ready, then time one raw
    open+save in it (the fork before and the exit after are off the clock, as in the pool)."""
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(done_w, b"r")
            os.read(go_r, 1)
            raw_pdf(FILES[kind][index])
            os.write(done_w, b"d")
        finally:
            os._exit(0)
    os.read(done_r, 1)
    started = time.perf_counter()
    os.write(go_w, b"g")
    os.read(done_r, 1)
    elapsed = time.perf_counter() - started
    os.waitpid(pid, 0)
    for fd in (go_r, go_w, done_r, done_w):
        os.close(fd)
    return elapsed


# ------------------------------------------------------------------ measurement


def cpu_now() -> float:
    """CPU seconds of this process, all threads (the pool hashes in threads)."""
    return time.process_time()


async def through_pool(pool: SanitizerPool, data: bytes, name: str) -> None:
    result = await pool.sanitize(data, name)
    if not result.rebuilt:
        raise RuntimeError(f"benchmark input refused: {result.report.code} {result.report.detail}")


async def timed(step: Callable[[], Awaitable[None] | None]) -> float:
    started = time.perf_counter()
    pending = step()
    if pending is not None:
        await pending
    return time.perf_counter() - started


async def pool_cpu_per_file(pool: SanitizerPool, files: list[bytes], name: str) -> float:
    """CPU seconds per file, all processes: this one, the fork server and its children."""
    await asyncio.sleep(0.3)  # let earlier children be reaped and spares replaced
    workers_before, own_before = pool.worker_cpu_seconds() or 0.0, cpu_now()
    for data in files:
        await through_pool(pool, data, name)
    await asyncio.sleep(0.3)  # this batch's children exit and are reaped; spares replaced
    workers_after, own_after = pool.worker_cpu_seconds() or 0.0, cpu_now()
    return ((workers_after - workers_before) + (own_after - own_before)) / len(files)


def raw_cpu_per_file(files: list[bytes]) -> float:
    before = cpu_now()
    for data in files:
        raw_pdf(data)
    return (cpu_now() - before) / len(files)


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


async def pdf_figures(
    pool: SanitizerPool, raw_workers: ProcessPoolExecutor, kind: str, repeat: int, detector: Detector
) -> dict[str, object]:
    """Interleaved per-file timings for raw, in-process, pool and fresh-child raw."""
    pdfs = FILES[kind]
    limits = pool.limits
    loop = asyncio.get_running_loop()

    def in_process(data: bytes) -> None:
        outcome = rebuild_untrusted(data, "a.pdf", limits, detector)
        assert outcome.data is not None
        verify_untrusted(outcome.data, "pdf", limits, detector)

    names = ("raw", "in_process", "pool", "fresh_child_raw", "preforked_child_raw")
    samples: dict[str, list[float]] = {name: [] for name in names}
    pair_ratios = []
    for round_number in range(repeat):
        for index, data in enumerate(pdfs):
            # Alternate the order, so neither side always runs right after the other.
            if (round_number + index) % 2:
                pool_s = await timed(lambda d=data: through_pool(pool, d, "report.pdf"))
                raw_s = await timed(lambda d=data: raw_pdf(d))
            else:
                raw_s = await timed(lambda d=data: raw_pdf(d))
                pool_s = await timed(lambda d=data: through_pool(pool, d, "report.pdf"))
            samples["raw"].append(raw_s)
            samples["pool"].append(pool_s)
            pair_ratios.append(raw_s / pool_s)
            samples["in_process"].append(await timed(lambda d=data: in_process(d)))
            for name, task in (
                ("fresh_child_raw", _fresh_child_task),
                ("preforked_child_raw", _preforked_child_task),
            ):
                job = raw_workers.submit(task, kind, index)
                samples[name].append(await loop.run_in_executor(None, job.result))
    raw_s, pool_s = statistics.median(samples["raw"]), statistics.median(samples["pool"])
    inproc_s = statistics.median(samples["in_process"])

    cpu_raw = raw_cpu_per_file(pdfs * repeat)
    cpu_pool = await pool_cpu_per_file(pool, pdfs * repeat, "report.pdf")

    # Two files at a time, same number of cores on both sides.
    batch = [(i, d) for i, d in enumerate(pdfs)] * repeat
    started = time.perf_counter()
    await asyncio.gather(*(through_pool(pool, d, "report.pdf") for _, d in batch))
    pool_two = PAGES * len(batch) / (time.perf_counter() - started)
    started = time.perf_counter()
    futures = [raw_workers.submit(_raw_task, kind, i) for i, _ in batch]
    await loop.run_in_executor(None, lambda: [f.result() for f in futures])
    raw_two = PAGES * len(batch) / (time.perf_counter() - started)
    return {
        "pages_per_file": PAGES,
        "mb_per_file": round(len(pdfs[0]) / 1e6, 2),
        "files_x_rounds": len(samples["raw"]),
        "raw_pikepdf_pages_per_s": round(PAGES / raw_s, 1),
        "sanitizer_in_process_pages_per_s": round(PAGES / inproc_s, 1),
        "sanitizer_pool_pages_per_s": round(PAGES / pool_s, 1),
        "ratio_pool_vs_raw": round(raw_s / pool_s, 3),
        "ratio_pool_vs_raw_median_of_pairs": round(statistics.median(pair_ratios), 3),
        "ratio_in_process_vs_raw": round(raw_s / inproc_s, 3),
        "ms_per_file": {
            "raw": _median_ms(samples["raw"]),
            "in_process": _median_ms(samples["in_process"]),
            "pool": _median_ms(samples["pool"]),
            "raw_in_fresh_child_fork_to_reap": _median_ms(samples["fresh_child_raw"]),
            "raw_in_preforked_child": _median_ms(samples["preforked_child_raw"]),
        },
        "cpu_ms_per_file": {"raw": round(cpu_raw * 1000, 2), "pool_all_processes": round(cpu_pool * 1000, 2)},
        "two_at_a_time": {
            "raw_2_processes_pages_per_s": round(raw_two, 1),
            "pool_2_workers_pages_per_s": round(pool_two, 1),
            "ratio": round(pool_two / raw_two, 3),
        },
        "target_ratio": 0.5,
    }


async def xlsx_figures(
    pool: SanitizerPool, workbook: bytes, rows: int, repeat: int, detector: Detector
) -> dict[str, object]:
    def in_process() -> None:
        assert rebuild_untrusted(workbook, "a.xlsx", pool.limits, detector).data is not None

    raw_s, pool_s, inproc_s = [], [], []
    for _ in range(repeat):
        raw_s.append(await timed(lambda: raw_xlsx(workbook)))
        pool_s.append(await timed(lambda: through_pool(pool, workbook, "budget.xlsx")))
        inproc_s.append(await timed(in_process))
    raw_m, pool_m, inproc_m = (statistics.median(s) for s in (raw_s, pool_s, inproc_s))
    return {
        "rows": rows,
        "columns": 10,
        "raw_openpyxl_rows_per_s": round(rows / raw_m, 1),
        "sanitizer_in_process_rows_per_s": round(rows / inproc_m, 1),
        "sanitizer_pool_rows_per_s": round(rows / pool_m, 1),
        "ratio_pool_vs_raw": round(raw_m / pool_m, 3),
    }


async def small_file_figures(pool: SanitizerPool, quick: bool) -> dict[str, object]:
    smalls = small_files()
    batch = smalls * (20 if quick else 60)
    await asyncio.sleep(0.3)
    workers_before, own_before = pool.worker_cpu_seconds() or 0.0, cpu_now()
    started = time.perf_counter()
    await asyncio.gather(*(through_pool(pool, data, name) for data, name in batch))
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.3)
    cpu = (pool.worker_cpu_seconds() or 0.0) - workers_before + cpu_now() - own_before
    return {
        "files": len(batch),
        "mix": sorted({name for _, name in smalls}),
        "workers": pool.workers,
        "files_per_s": round(len(batch) / elapsed, 1),
        "cpu_ms_per_file": round(cpu / len(batch) * 1000, 2),
        "target_files_per_s": 50,
        "isolation": pool.isolation,
    }


async def measure(raw_workers: ProcessPoolExecutor, quick: bool) -> dict[str, object]:
    repeat = 3 if quick else 7
    rows = 2_000 if quick else 20_000
    workbook = make_xlsx(rows)
    detector = Detector()
    results: dict[str, object] = {}
    async with SanitizerPool(Limits(), workers=2) as pool:
        for kind in FILES:  # warm the fork server, its children's paths and this process
            for data in FILES[kind]:
                await through_pool(pool, data, "warm.pdf")
                raw_pdf(data)
        results["pdf_text"] = await pdf_figures(pool, raw_workers, "text", repeat, detector)
        results["pdf_scanned"] = await pdf_figures(pool, raw_workers, "scanned", repeat, detector)
        results["xlsx"] = await xlsx_figures(pool, workbook, rows, max(2, repeat // 2), detector)
        results["small_files"] = await small_file_figures(pool, quick)
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
        ms, cpu, two = pdf["ms_per_file"], pdf["cpu_ms_per_file"], pdf["two_at_a_time"]
        rows += [
            (f"{label} ({pdf['mb_per_file']} MB), {pdf['files_x_rounds']} files, interleaved", "", ""),
            ("  raw pikepdf open+save, this process", f"{pdf['raw_pikepdf_pages_per_s']} pages/s",
             f"{ms['raw']} ms/file, {cpu['raw']} ms CPU/file"),
            ("  sanitizer in-process (rebuild + verify, no isolation)", f"{pdf['sanitizer_in_process_pages_per_s']} pages/s",
             f"x{pdf['ratio_in_process_vs_raw']} of raw"),
            ("  sanitizer via pool, one file at a time", f"{pdf['sanitizer_pool_pages_per_s']} pages/s",
             f"x{pdf['ratio_pool_vs_raw']} of raw (pairs: x{pdf['ratio_pool_vs_raw_median_of_pairs']}; target >= 0.5); "
             f"{ms['pool']} ms/file, {cpu['pool_all_processes']} ms CPU/file (all processes)"),
            ("  reference: raw in a fresh child per file", "",
             f"{ms['raw_in_preforked_child']} ms/file forked ahead, {ms['raw_in_fresh_child_fork_to_reap']} ms fork to reap"),
            ("  2 at a time: raw in 2 processes / pool with 2 workers",
             f"{two['raw_2_processes_pages_per_s']} / {two['pool_2_workers_pages_per_s']}", f"x{two['ratio']}"),
        ]  # fmt: skip
    xlsx, small = results["xlsx"], results["small_files"]
    assert isinstance(xlsx, dict) and isinstance(small, dict)
    rows += [
        (f"XLSX {xlsx['rows']} rows x 10: raw openpyxl load+save", f"{xlsx['raw_openpyxl_rows_per_s']} rows/s", ""),
        ("  sanitizer in-process", f"{xlsx['sanitizer_in_process_rows_per_s']} rows/s", ""),
        ("  sanitizer via pool", f"{xlsx['sanitizer_pool_rows_per_s']} rows/s", f"x{xlsx['ratio_pool_vs_raw']} of raw"),
        (f"small files via pool ({small['workers']} workers)", f"{small['files_per_s']} files/s",
         f"target >= 50; {small['cpu_ms_per_file']} ms CPU/file"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'result':>18}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>18}  {note}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and a smaller workbook")
    args = parser.parse_args()
    FILES["text"] = [make_pdf(PAGES, seed) for seed in range(3)]
    FILES["scanned"] = [make_scanned_pdf(PAGES, seed) for seed in range(2)]
    # Raw worker processes are forked now, before any event loop or thread exists.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as raw_workers:
        for _ in range(2):  # start both workers and warm their heaps
            list(raw_workers.map(_raw_task, ["text", "scanned"] * 2, [0, 0, 1, 1]))
        results = asyncio.run(measure(raw_workers, args.quick))
    print_table(results)
    print(json.dumps(results, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
