"""Builders for clean and hostile test files (PDF with pikepdf; OOXML with zipfile).

Everything here is generated at test time; nothing is copied from the shared corpus.
Payloads are harmless (``app.alert``, ``calc.exe`` strings, ``.invalid`` hosts).
"""

from __future__ import annotations

import io
import struct
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Mapping

import pikepdf
from PIL import Image

# --------------------------------------------------------------------------- PDF


def _content(text: str) -> bytes:
    return f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")


def pdf_document(pages: int = 1, text: str = "Hello") -> pikepdf.Pdf:
    """A plain PDF with ``pages`` pages, each showing ``text`` and its number."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica
        )
    )
    for number in range(pages):
        page = pdf.add_blank_page(page_size=(612, 792))
        page.obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        page.obj.Contents = pdf.make_stream(_content(f"{text} {number + 1}"))
    return pdf


def pdf_bytes(pdf: pikepdf.Pdf, **save_options: object) -> bytes:
    out = io.BytesIO()
    pdf.save(out, **save_options)
    return out.getvalue()


def js(pdf: pikepdf.Pdf, code: str = "app.alert('x')") -> pikepdf.Object:
    return pdf.make_indirect(pikepdf.Dictionary(S=pikepdf.Name.JavaScript, JS=pikepdf.String(code)))


def _link(pdf: pikepdf.Pdf, action: pikepdf.Dictionary, y: int = 700) -> pikepdf.Object:
    return pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Link, Rect=[72, y, 200, y + 20], A=action
        )
    )


def hostile_pdf_everywhere(*, object_streams: bool = False) -> bytes:
    """JavaScript and friends in every place the issue lists, in one file."""
    pdf = pdf_document(pages=2, text="Visible")
    root = pdf.Root
    root.Names = pikepdf.Dictionary(
        JavaScript=pikepdf.Dictionary(Names=[pikepdf.String("doc"), js(pdf, "app.alert('doc')")])
    )
    root.OpenAction = js(pdf, "this.print()")
    root.AA = pikepdf.Dictionary(WC=js(pdf), WS=js(pdf))
    page0, page1 = pdf.pages[0].obj, pdf.pages[1].obj
    page0.AA = pikepdf.Dictionary(O=js(pdf, "page open"), C=js(pdf, "page close"))
    launch = pikepdf.Dictionary(S=pikepdf.Name.Launch, F=pikepdf.String("cmd.exe"))
    js_uri = pikepdf.Dictionary(S=pikepdf.Name.URI, URI=pikepdf.String("java\tscript:alert(1)"))
    file_uri = pikepdf.Dictionary(
        S=pikepdf.Name.URI, URI=pikepdf.String("file:///C:/Windows/System32/calc.exe")
    )
    web_uri = pikepdf.Dictionary(S=pikepdf.Name.URI, URI=pikepdf.String("https://example.invalid/ok"))
    gotor = pikepdf.Dictionary(
        S=pikepdf.Name.GoToR, F=pikepdf.String("\\\\192.0.2.1\\share\\x.pdf"), D=[0, pikepdf.Name.Fit]
    )
    gotoe = pikepdf.Dictionary(S=pikepdf.Name.GoToE, NewWindow=True)
    chained = pikepdf.Dictionary(S=pikepdf.Name.GoTo, D=[page1, pikepdf.Name.Fit], Next=[js(pdf, "chained")])
    submit = pikepdf.Dictionary(
        S=pikepdf.Name.SubmitForm,
        F=pikepdf.Dictionary(FS=pikepdf.Name.URL, F=pikepdf.String("https://example.invalid/s")),
    )
    importdata = pikepdf.Dictionary(S=pikepdf.Name.ImportData, F=pikepdf.String("data.fdf"))
    print_named = pikepdf.Dictionary(S=pikepdf.Name.Named, N=pikepdf.Name.Print)
    next_page = pikepdf.Dictionary(S=pikepdf.Name.Named, N=pikepdf.Name.NextPage)
    actions = [
        launch,
        js_uri,
        file_uri,
        web_uri,
        gotor,
        gotoe,
        chained,
        submit,
        importdata,
        print_named,
        next_page,
    ]
    annots = [_link(pdf, action, 100 + 40 * index) for index, action in enumerate(actions)]
    widget = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Widget, FT=pikepdf.Name.Tx, T=pikepdf.String("f1"),
            Rect=[300, 100, 400, 120], AA=pikepdf.Dictionary(K=js(pdf, "AFNumber_Keystroke()")),
            A=js(pdf, "widget click"),
        )
    )  # fmt: skip
    annots.append(widget)
    sound = pdf.make_indirect(
        pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Sound, Rect=[0, 0, 10, 10],
                           Sound=pdf.make_stream(b"\x00" * 64))
    )  # fmt: skip
    richmedia = pdf.make_indirect(
        pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.RichMedia, Rect=[0, 0, 10, 10])
    )
    screen = pdf.make_indirect(
        pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Screen, Rect=[0, 0, 10, 10],
                           A=pikepdf.Dictionary(S=pikepdf.Name.Rendition, JS=pikepdf.String("rendition js")))
    )  # fmt: skip
    attachment = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.FileAttachment, Rect=[0, 0, 10, 10],
            FS=pikepdf.Dictionary(Type=pikepdf.Name.Filespec, F=pikepdf.String("payload.exe"),
                                  EF=pikepdf.Dictionary(F=pdf.make_stream(b"MZ fake executable"))),
        )
    )  # fmt: skip
    annots += [sound, richmedia, screen, attachment]
    page0.Annots = pdf.make_indirect(pikepdf.Array(annots))
    root.AcroForm = pikepdf.Dictionary(
        Fields=[widget],
        XFA=[pikepdf.String("template"), pdf.make_stream(b"<xdp:xdp><script>x</script></xdp:xdp>")],
    )
    root.Outlines = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Outlines))
    item = pdf.make_indirect(
        pikepdf.Dictionary(Title=pikepdf.String("Chapter"), Parent=root.Outlines, A=js(pdf, "outline"))
    )
    root.Outlines.First = item
    root.Outlines.Last = item
    pdf.attachments["invoice.pdf.exe"] = pikepdf.AttachedFileSpec(
        pdf, b"MZ not really", mime_type="application/octet-stream"
    )
    options: dict[str, object] = {}
    if object_streams:
        options["object_stream_mode"] = pikepdf.ObjectStreamMode.generate
    return pdf_bytes(pdf, **options)


def raw_pdf(objects: Mapping[int, bytes], root: int, *, header: bytes = b"%PDF-1.7\n") -> tuple[bytes, int]:
    """Assemble a PDF from raw object bodies with a correct xref table.

    Returns:
        (bytes, offset of the xref table) so that an incremental update can point back.
    """
    out = bytearray(header)
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    size = max(objects) + 1
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for number in range(1, size):
        out += b"%010d 00000 n \n" % offsets[number] if number in offsets else b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, root, xref)
    return bytes(out), xref


def incremental_update(
    base: bytes, prev_xref: int, objects: Mapping[int, bytes], root: int, size: int
) -> bytes:
    """Append an incremental update (new objects, xref section, trailer with /Prev)."""
    out = bytearray(base)
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n"
    for number in sorted(offsets):
        out += b"%d 1\n%010d 00000 n \n" % (number, offsets[number])
    out += b"trailer\n<< /Size %d /Root %d 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (
        size,
        root,
        prev_xref,
        xref,
    )
    return bytes(out)


def pdf_with_incremental_js() -> bytes:
    """A clean one-page PDF whose incremental update adds an OpenAction with JavaScript."""
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        4: b"<< /Length 0 >>\nstream\n\nendstream",
    }
    base, xref = raw_pdf(objects, root=1)
    update = {
        1: b"<< /Type /Catalog /Pages 2 0 R /OpenAction 5 0 R >>",
        5: b"<< /S /JavaScript /JS (app.alert\\('from the update'\\)) >>",
    }
    return incremental_update(base, xref, update, root=1, size=6)


def encrypted_pdf(user_password: str = "") -> bytes:
    pdf = pdf_document()
    return pdf_bytes(pdf, encryption=pikepdf.Encryption(owner="owner", user=user_password))


# --------------------------------------------------------------------------- OOXML

CT_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
RELS_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
DOCX_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
DOCM_MAIN = "application/vnd.ms-word.document.macroEnabled.main+xml"
XLSX_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
XLSM_MAIN = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
PPTX_MAIN = "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"


def rels_xml(rels: Iterable[tuple[str, str, str, bool]]) -> str:
    """(id, type, target, external) -> a .rels document."""
    external = ' TargetMode="External"'
    body = "".join(
        f'<Relationship Id="{rid}" Type="{rtype}" Target="{target}"{external if ext else ""}/>'
        for rid, rtype, target, ext in rels
    )
    return f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="{RELS_NS}">{body}</Relationships>'


def content_types_xml(overrides: Mapping[str, str], defaults: Mapping[str, str] | None = None) -> str:
    defaults = {
        "rels": "application/vnd.openxmlformats-package.relationships+xml",
        "xml": "application/xml",
        **(defaults or {}),
    }
    body = "".join(f'<Default Extension="{e}" ContentType="{c}"/>' for e, c in defaults.items())
    body += "".join(f'<Override PartName="/{p}" ContentType="{c}"/>' for p, c in overrides.items())
    return f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="{CT_NS}">{body}</Types>'


def zip_bytes(
    members: Mapping[str, bytes | str] | Iterable[tuple[str, bytes | str]], *, stored: bool = False
) -> bytes:
    out = io.BytesIO()
    items = members.items() if isinstance(members, Mapping) else members
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on duplicate names, which some tests want
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as archive:
            for name, data in items:
                archive.writestr(name, data)
    return out.getvalue()


W_DOC_OPEN = (
    f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{W_NS}" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
    'xmlns:o="urn:schemas-microsoft-com:office:office" xmlns:v="urn:schemas-microsoft-com:vml" '
    'xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:w14="http://schemas.microsoft.com/office/word/2010/wordml" mc:Ignorable="w14"><w:body>'
)
W_DOC_CLOSE = "</w:body></w:document>"


def para(text: str) -> str:
    return f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>"


def complex_field(*instruction_pieces: str, result: str = "RESULT") -> str:
    """A w:fldChar field whose instruction is split over several runs."""
    instr = "".join(
        f'<w:r><w:instrText xml:space="preserve">{p}</w:instrText></w:r>' for p in instruction_pieces
    )
    return (
        '<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r>'
        + instr
        + '<w:r><w:fldChar w:fldCharType="separate"/></w:r>'
        + f'<w:r><w:t>{result}</w:t></w:r><w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>'
    )


def docx(
    body: str,
    *,
    main_type: str = DOCX_MAIN,
    doc_rels: Iterable[tuple[str, str, str, bool]] = (),
    root_rels: Iterable[tuple[str, str, str, bool]] = (),
    parts: Mapping[str, bytes | str] | None = None,
    overrides: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] | None = None,
    settings: str | None = None,
    settings_rels: Iterable[tuple[str, str, str, bool]] = (),
) -> bytes:
    """A Word package with the given body XML and optional extra parts/relationships."""
    all_overrides = {"word/document.xml": main_type, **(overrides or {})}
    members: dict[str, bytes | str] = {
        "[Content_Types].xml": "",
        "_rels/.rels": rels_xml([("rId1", R + "officeDocument", "word/document.xml", False), *root_rels]),
        "word/document.xml": W_DOC_OPEN + body + W_DOC_CLOSE,
    }
    doc_rels = list(doc_rels)
    if settings is not None:
        doc_rels.append(("rIdSettings", R + "settings", "settings.xml", False))
        all_overrides["word/settings.xml"] = (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.settings+xml"
        )
        members["word/settings.xml"] = settings
        if settings_rels:
            members["word/_rels/settings.xml.rels"] = rels_xml(settings_rels)
    if doc_rels:
        members["word/_rels/document.xml.rels"] = rels_xml(doc_rels)
    members.update(parts or {})
    members["[Content_Types].xml"] = content_types_xml(all_overrides, defaults)
    return zip_bytes(members)


X_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def xlsx(
    sheet_data: str,
    *,
    main_type: str = XLSX_MAIN,
    workbook_extra: str = "",
    extra_sheets: Iterable[tuple[str, str, str, str]] = (),
    wb_rels: Iterable[tuple[str, str, str, bool]] = (),
    root_rels: Iterable[tuple[str, str, str, bool]] = (),
    sheet_rels: Iterable[tuple[str, str, str, bool]] = (),
    sheet_tail: str = "",
    parts: Mapping[str, bytes | str] | None = None,
    overrides: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] | None = None,
) -> bytes:
    """A minimal SpreadsheetML package; ``sheet_data`` is the inside of ``<sheetData>``.

    ``extra_sheets``: (name, relationship id, relationship type, part name) added to the
    ``<sheets>`` list (used for macro sheets).
    """
    if not sheet_data.startswith("<row"):
        sheet_data = f'<row r="1">{sheet_data}</row>'
    sheets = '<sheet name="データ" sheetId="1" r:id="rId1"/>'
    rels = [("rId1", R + "worksheet", "worksheets/sheet1.xml", False), *wb_rels]
    for index, (name, rid, rtype, part) in enumerate(extra_sheets, start=2):
        sheets += f'<sheet name="{name}" sheetId="{index}" r:id="{rid}"/>'
        rels.append((rid, rtype, part, False))
    workbook = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="{X_NS}" '
        f'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>{sheets}</sheets>'
        f"{workbook_extra}</workbook>"
    )
    sheet = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="{X_NS}" '
        f'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f"<sheetData>{sheet_data}</sheetData>{sheet_tail}</worksheet>"
    )
    all_overrides = {
        "xl/workbook.xml": main_type,
        "xl/worksheets/sheet1.xml": "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml",
        **(overrides or {}),
    }
    members: dict[str, bytes | str] = {
        "[Content_Types].xml": content_types_xml(all_overrides, defaults),
        "_rels/.rels": rels_xml([("rId1", R + "officeDocument", "xl/workbook.xml", False), *root_rels]),
        "xl/workbook.xml": workbook,
        "xl/_rels/workbook.xml.rels": rels_xml(rels),
        "xl/worksheets/sheet1.xml": sheet,
    }
    if sheet_rels:
        members["xl/worksheets/_rels/sheet1.xml.rels"] = rels_xml(sheet_rels)
    members.update(parts or {})
    return zip_bytes(members)


def cell_formula(ref: str, formula: str, cached: str = "0") -> str:
    return f'<c r="{ref}"><f>{formula}</f><v>{cached}</v></c>'


def cell_text(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def cell_number(ref: str, value: float) -> str:
    return f'<c r="{ref}"><v>{value}</v></c>'


P_NS = "http://schemas.openxmlformats.org/presentationml/2006/main"
A_NS = "http://schemas.openxmlformats.org/drawingml/2006/main"


def pptx(slide_body: str, *, slide_rels: Iterable[tuple[str, str, str, bool]] = (), main_type: str = PPTX_MAIN,
         pres_rels: Iterable[tuple[str, str, str, bool]] = (), parts: Mapping[str, bytes | str] | None = None,
         overrides: Mapping[str, str] | None = None, defaults: Mapping[str, str] | None = None) -> bytes:  # fmt: skip
    """A one-slide PresentationML package (no master/layout: enough for the rebuild)."""
    slide = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><p:sld xmlns:p="{P_NS}" xmlns:a="{A_NS}" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f"<p:cSld><p:spTree>{slide_body}</p:spTree></p:cSld></p:sld>"
    )
    presentation = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><p:presentation xmlns:p="{P_NS}" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<p:sldIdLst><p:sldId id="256" r:id="rId1"/></p:sldIdLst></p:presentation>'
    )
    all_overrides = {
        "ppt/presentation.xml": main_type,
        "ppt/slides/slide1.xml": "application/vnd.openxmlformats-officedocument.presentationml.slide+xml",
        **(overrides or {}),
    }
    members: dict[str, bytes | str] = {
        "[Content_Types].xml": content_types_xml(all_overrides, defaults),
        "_rels/.rels": rels_xml([("rId1", R + "officeDocument", "ppt/presentation.xml", False)]),
        "ppt/presentation.xml": presentation,
        "ppt/_rels/presentation.xml.rels": rels_xml(
            [("rId1", R + "slide", "slides/slide1.xml", False), *pres_rels]
        ),
        "ppt/slides/slide1.xml": slide,
    }
    if slide_rels:
        members["ppt/slides/_rels/slide1.xml.rels"] = rels_xml(slide_rels)
    members.update(parts or {})
    return zip_bytes(members)


def shape_with_text(text: str, click: str = "") -> str:
    return (
        '<p:sp><p:nvSpPr><p:cNvPr id="2" name="t">' + click + "</p:cNvPr><p:cNvSpPr/><p:nvPr/></p:nvSpPr>"
        f"<p:spPr/><p:txBody><a:bodyPr/><a:p><a:r><a:t>{text}</a:t></a:r></a:p></p:txBody></p:sp>"
    )


# --------------------------------------------------------------------------- images and text


def png_bytes(size: tuple[int, int] = (32, 24), mode: str = "RGB", **save: object) -> bytes:
    out = io.BytesIO()
    image = Image.new(mode, size, "white" if mode != "P" else 1)
    for x in range(size[0]):
        image.putpixel((x, x % size[1]), (200, 0, 0) if mode == "RGB" else 0)
    image.save(out, format="PNG", **save)
    return out.getvalue()


def png_with_metadata() -> bytes:
    """PNG with a tEXt chunk and an eXIf chunk carrying GPS data."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret author note")
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (35.0, 41.0, 22.0)}  # GPS IFD
    return png_bytes(pnginfo=info, exif=exif.tobytes())


def jpeg_with_gps(orientation: int = 6) -> bytes:
    image = Image.new("RGB", (40, 20), (10, 120, 200))
    image.putpixel((0, 0), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (35.0, 41.0, 22.0), 3: "E", 4: (139.0, 41.0, 30.0)}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes(), comment=b"taken at home", quality=90)
    return out.getvalue()


def animated_gif(frames: int = 3) -> bytes:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255), (9, 9, 9)]
    images = [Image.new("RGB", (16, 16), colours[i % len(colours)]).convert("P") for i in range(frames)]
    out = io.BytesIO()
    images[0].save(
        out, format="GIF", save_all=True, append_images=images[1:], duration=50, loop=0, comment=b"gif note"
    )
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims huge dimensions (decompression-bomb shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack("!I", len(data))
            + kind
            + data
            + struct.pack("!I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack("!IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


SVG_WITH_SCRIPT = (
    b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script><rect width="1" height="1"/></svg>'
)
HTML_PAGE = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
)
XXE = '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
