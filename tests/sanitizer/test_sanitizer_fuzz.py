"""Mutated and truncated inputs: always "rebuilt" or "refused", never a crash or a hang.

The default budget is small (a few seconds on 2 cores). For a longer run:
``KAKEHASHI_FUZZ_EXAMPLES=5000 pytest tests/sanitizer/test_sanitizer_fuzz.py``.
"""

from __future__ import annotations

import io
import os
import time
import zipfile
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sanitizer_samples import (
    animated_gif,
    cell_formula,
    cell_text,
    complex_field,
    docx,
    hostile_pdf_everywhere,
    jpeg_with_gps,
    para,
    pdf_bytes,
    pdf_document,
    png_with_metadata,
    pptx,
    shape_with_text,
    xlsx,
    zip_bytes,
)

from sanitizer.core import rebuild_untrusted, verify_untrusted
from sanitizer.errors import Code
from sanitizer.limits import Limits

EXAMPLES = int(os.environ.get("KAKEHASHI_FUZZ_EXAMPLES", "300"))
FUZZ_LIMITS = Limits(cpu_seconds=5, wall_seconds=15, memory_bytes=1024 * 1024 * 1024)
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@cache
def seeds() -> tuple[tuple[str, bytes], ...]:
    return (
        ("seed.pdf", pdf_bytes(pdf_document(pages=2))),
        ("hostile.pdf", hostile_pdf_everywhere(object_streams=True)),
        ("seed.docx", docx(para("本文") + complex_field("DDEAUTO cmd") + '<w:p><w:hyperlink r:id="rId9"><w:r><w:t>l</w:t></w:r></w:hyperlink></w:p>',
                           doc_rels=[("rId9", "http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink", "file:///x", True)])),
        ("seed.xlsx", xlsx(cell_text("A1", "値") + cell_formula("B1", "cmd|'/c calc'!A0") + cell_formula("C1", "SUM(A1:A2)"))),
        ("seed.pptx", pptx(shape_with_text("スライド", '<a:hlinkClick r:id="" action="ppaction://program"/>'))),
        ("seed.png", png_with_metadata()),
        ("seed.jpg", jpeg_with_gps(6)),
        ("seed.gif", animated_gif(3)),
        ("seed.csv", "名前,式\r\n山田,=1+1\r\n".encode("cp932")),
        ("seed.txt", "テキスト\u202e\n".encode()),
    )  # fmt: skip


def _mutate_bytes(data: bytearray, op: str, position: int, blob: bytes) -> bytearray:
    if not data:
        return bytearray(blob)
    at = position % len(data)
    if op == "flip":
        data[at] ^= (blob[0] if blob else 0xFF) or 0x01
    elif op == "truncate":
        del data[at:]
    elif op == "insert":
        data[at:at] = blob
    elif op == "delete":
        del data[at : at + max(1, len(blob))]
    elif op == "duplicate":
        data[at:at] = data[at : at + 64]
    return data


operations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "truncate", "insert", "delete", "duplicate"]),
        st.integers(min_value=0, max_value=2**31),
        st.binary(max_size=24),
    ),
    min_size=1,
    max_size=4,
)


@st.composite
def mutated_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """A seed with raw byte mutations, or (for zips) mutations inside one member."""
    name, seed = draw(st.sampled_from(seeds()))
    ops = draw(operations)
    if seed.startswith(b"PK") and draw(st.booleans()):
        with zipfile.ZipFile(io.BytesIO(seed)) as archive:
            members = {n: bytearray(archive.read(n)) for n in archive.namelist()}
        target = draw(st.sampled_from(sorted(members)))
        for op, position, blob in ops:
            members[target] = _mutate_bytes(members[target], op, position, blob)
        return name, zip_bytes({n: bytes(d) for n, d in members.items()})
    data = bytearray(seed)
    for op, position, blob in ops:
        data = _mutate_bytes(data, op, position, blob)
    return name, bytes(data)


@FUZZ_SETTINGS
@given(sample=mutated_files())
def test_mutations_through_the_worker_pool(pool, sample: tuple[str, bytes]) -> None:  # type: ignore[no-untyped-def]
    name, data = sample
    started = time.monotonic()
    result = pool.sanitize(data, name, FUZZ_LIMITS)
    elapsed = time.monotonic() - started
    assert result.code in Code
    assert elapsed < FUZZ_LIMITS.wall_seconds * 2 + 10  # two children at most, each bounded
    if result.rebuilt:
        assert result.data and result.report.output_sha256
    else:
        assert result.data is None
    # Limits are generous for these small files: hitting one means a parser went astray.
    assert result.code not in (Code.WORKER_CRASHED, Code.WORKER_PROTOCOL, Code.INTERNAL_ERROR), (
        result.report.detail
    )


@FUZZ_SETTINGS
@given(sample=mutated_files())
def test_mutations_in_process_fail_closed_with_a_precise_code(detector, sample: tuple[str, bytes]) -> None:  # type: ignore[no-untyped-def]
    """Without isolation, to see which code a refusal gets: never the catch-all, and never unverified output."""
    name, data = sample
    outcome = rebuild_untrusted(data, name, Limits(), detector)
    assert outcome.code is not Code.INTERNAL_ERROR
    if outcome.code is Code.OK:
        assert outcome.data is not None and outcome.kind is not None
        assert verify_untrusted(outcome.data, outcome.kind, Limits(), detector).code is Code.OK
