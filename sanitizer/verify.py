"""Independent post-check of a rebuilt file: re-parse it and look for every threat class.

This module deliberately shares no checking code with the rebuilders. They work from
allow-lists (keep what is known); this works from deny-lists (find what is forbidden),
walks the output with its own loops, and uses its own patterns. A bug in one is
unlikely to be mirrored in the other. It imports no rebuilder module.

``verify`` returns a list of finding names (empty means clean). The names are a fixed
vocabulary (``FINDINGS``) so that the worker can report them without quoting content.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import unicodedata
import warnings
import xml.etree.ElementTree as ET  # noqa: S405 - ParseError type only; parsing goes through defusedxml
import zipfile
from collections.abc import Iterator
from typing import BinaryIO

import defusedxml
import defusedxml.ElementTree as DET
import pikepdf
from PIL import Image

from sanitizer.libmagic import Detector
from sanitizer.limits import Limits
from sanitizer.report import FINDINGS
from sanitizer.source import Source

_TEXT_KINDS = frozenset({"text", "csv", "tsv"})
_EXPECTED_MIME = {
    "pdf": ("application/pdf",),
    "png": ("image/png",),
    "jpeg": ("image/jpeg",),
    "gif": ("image/gif",),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",),
    "pptx": ("application/vnd.openxmlformats-officedocument.presentationml.presentation",),
    "text": ("text/",),
    "csv": ("text/", "application/csv"),
    "tsv": ("text/", "application/csv"),
}

# ---------------------------------------------------------------- PDF

_PDF_BAD_ACTIONS = frozenset(
    "/JavaScript /Launch /SubmitForm /ImportData /GoToR /GoToE /Rendition /Movie /Sound "
    "/RichMediaExecute /GoTo3DView /Thread".split()
)
_PDF_BAD_ANNOTS = frozenset("/FileAttachment /RichMedia /Movie /Sound /Screen /3D".split())
_PDF_STANDARD_NAMED = frozenset("/NextPage /PrevPage /FirstPage /LastPage".split())
_PDF_KEYS_OF_INTEREST = (
    "/JS", "/JavaScript", "/AA", "/EF", "/RF", "/EmbeddedFiles", "/EmbeddedFile", "/XFA", "/OpenAction", "/S",
    "/Subtype",
)  # fmt: skip
# Any of them as a quoted JSON name, found by one regex search per object.
_PDF_INTEREST = re.compile("|".join(re.escape(f'"{key}"') for key in _PDF_KEYS_OF_INTEREST).encode())
_WEB_LINK = re.compile(r"(?i)(https?://|mailto:)")
_ASCII_WS = re.compile(r"[\x00-\x20\x7f]")


def _json_dicts(value: object) -> Iterator[dict[str, object]]:
    """Every dictionary inside a qpdf JSON value (direct objects are inlined by qpdf)."""
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            yield node
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)


def _json_string(value: object) -> str:
    """A qpdf JSON v2 string ("u:text" or "b:hex") as text."""
    if not isinstance(value, str):
        return ""
    if value.startswith("u:"):
        return value[2:]
    if value.startswith("b:"):
        try:
            return bytes.fromhex(value[2:]).decode("latin-1")
        except ValueError:
            return ""
    return value


def _check_pdf_dict(node: dict[str, object], found: set[str]) -> None:
    if "/JS" in node or "/JavaScript" in node:
        found.add("pdf.javascript")
    if "/AA" in node:
        found.add("pdf.auto_action")
    if "/EF" in node or "/RF" in node or "/EmbeddedFiles" in node or node.get("/Type") == "/EmbeddedFile":
        found.add("pdf.embedded_file")
    if "/XFA" in node:
        found.add("pdf.xfa")
    if isinstance(node.get("/OpenAction"), dict):
        found.add("pdf.open_action")
    if node.get("/Subtype") in _PDF_BAD_ANNOTS:
        found.add("pdf.forbidden_annotation")
    action = node.get("/S")
    if action in _PDF_BAD_ACTIONS:
        found.add("pdf.javascript" if action == "/JavaScript" else "pdf.forbidden_action")
    elif action == "/URI" and not _WEB_LINK.match(_ASCII_WS.sub("", _json_string(node.get("/URI")))):
        found.add("pdf.unsafe_uri")
    elif action == "/Named" and node.get("/N") not in _PDF_STANDARD_NAMED:
        found.add("pdf.forbidden_action")


def _verify_pdf(source: Source, limits: Limits) -> list[str]:
    with source.stream() as stream:
        return _verify_pdf_stream(stream)


def _verify_pdf_stream(stream: BinaryIO) -> list[str]:
    found: set[str] = set()
    try:
        # Over a memfd qpdf maps the sealed file; nothing is copied into this process.
        pdf = pikepdf.open(stream, access_mode=pikepdf.AccessMode.mmap)
    except pikepdf.PasswordError:
        return ["pdf.encrypted"]
    except Exception:  # noqa: BLE001 - any parse failure of our own output is a failed verification
        return ["verify.unparseable"]
    with pdf:
        if pdf.is_encrypted:
            found.add("pdf.encrypted")
        if "/Prev" in pdf.trailer:
            found.add("pdf.incremental_update")
        if len(pdf.pages) == 0:
            found.add("pdf.no_pages")
        # Walk qpdf's own JSON rendering of every object: parsed structure (object
        # streams unpacked, #xx escapes decoded), checked here in plain Python. Objects
        # that mention none of the keys below cannot fail any check and are not decoded.
        for obj in pdf.objects:
            if not isinstance(obj, pikepdf.Object):
                continue  # a scalar indirect object (an integer /Length) holds nothing to check
            rendered = obj.to_json(dereference=True)
            if not _PDF_INTEREST.search(rendered):
                continue
            try:
                tree = json.loads(rendered)
            except (ValueError, RuntimeError):
                found.add("verify.unparseable")
                continue
            for node in _json_dicts(tree):
                _check_pdf_dict(node, found)
    return sorted(found)


# ---------------------------------------------------------------- OOXML

_BAD_MEMBER = re.compile(
    r"(?i)(vbaproject|vbadata|activex|/embeddings/|oleobject|customui|externallink|macrosheets/|"
    r"dialogsheets/|attachedtoolbars|keymapcustomizations|webextension|/media/.*\.(mp[34]|wav|wma|wmv|avi|mov|m4a|mid)$)"
)
_BAD_CONTENT_TYPE = re.compile(
    r"(?i)(macroenabled|vbaproject|vbadata|activex|oleobject|macrosheet|externallink|officedocument\.package|"
    r"webextension|keymapcustomizations|attachedtoolbars|dialogsheet|obfuscatedfont|x-fontdata)"
)
_BAD_REL_TYPE = re.compile(
    r"(?i)/(vbaProject|vbaProjectSignature|wordVbaData|oleObject|package|control|activeXControlBinary|"
    r"attachedTemplate|externalLink|externalLinkPath|extensibility|xlMacrosheet|xlIntlMacrosheet|dialogsheet|"
    r"webextension|webextensiontaskpanes|aFChunk|subDocument|frame|mailMergeSource|connections|queryTable|"
    r"keyMapCustomizations|attachedToolbars|font)$"
)
_HYPERLINK_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink"
_FORBIDDEN_ELEMENTS = frozenset(
    {
        "attachedTemplate", "mailMerge", "control", "OLEObject", "oleObj", "ddeLink", "oleLink",
        "externalReference", "subDoc", "altChunk", "externalData", "oleObjects", "controls",
    }
)  # fmt: skip
_DENY_FIELDS = re.compile(
    r"^\s*(DDE|DDEAUTO|INCLUDETEXT|INCLUDEPICTURE|INCLUDE|IMPORT|LINK|DATABASE|RD|MACROBUTTON|PRINT|EMBED|"
    r"AUTOTEXT|AUTOTEXTLIST)\b"
)
_DDE_ANYWHERE = re.compile(r"\bDDE(AUTO)?\b")
_RISKY_PPACTION = re.compile(r"(?i)ppaction://(program|macro|ole|hlinkfile|hlinkpres|media)")
_FORMULA_STRING = re.compile(r'"([^"]|"")*"')
_FORMULA_BAD = re.compile(
    # DDE pipe; quoted external reference 'C:\dir\[book.xlsx]Sheet'!; unquoted [1]Sheet! or [1]!;
    # UNC path; file: URL; functions that fetch, call or execute.
    r"\||'[^']*\[[^\]']+\][^']*'!|(?:^|[^A-Z0-9_.\]\[])\[[^\[\]]+\][A-Z0-9_.]*!|\\\\|FILE:|"
    r"\b(WEBSERVICE|RTD|CALL|REGISTER|EXEC|IMAGE|STOCKHISTORY|FOPEN|FWRITE|FREAD|EXECUTE|INITIATE|POKE|"
    r"REQUEST|RUN|EVALUATE|CREATE\.OBJECT|IMPORTXML|IMPORTDATA|IMPORTRANGE)\s*\("
)
_HYPERLINK_CALL = re.compile(r"\bHYPERLINK\s*\(\s*(\"[^\"]*\")?")
_ALLOWED_DEFINED_NAMES = frozenset({"_xlnm.Print_Area", "_xlnm.Print_Titles", "_xlnm._FilterDatabase"})


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _formula_is_bad(text: str) -> bool:
    folded = unicodedata.normalize("NFKC", text).upper()
    for match in _HYPERLINK_CALL.finditer(folded):
        literal = match.group(1)
        if not literal or not _WEB_LINK.match(literal.strip('"')):
            return True
    return bool(_FORMULA_BAD.search(_FORMULA_STRING.sub('""', folded)))


def _scan_xml(name: str, data: bytes, found: set[str]) -> None:
    field_depth = 0
    instruction: list[str] = []
    all_instructions: list[str] = []
    try:
        for event, el in DET.iterparse(io.BytesIO(data), events=("end",), forbid_dtd=True):
            del event
            local = _local(el.tag)
            if local in _FORBIDDEN_ELEMENTS:
                found.add("ooxml.forbidden_element")
            elif local == "fldChar":
                kind = next((v for k, v in el.attrib.items() if _local(k) == "fldCharType"), "")
                if kind == "begin":
                    field_depth += 1
                    instruction = []
                elif kind in ("separate", "end") and instruction:
                    if _DENY_FIELDS.match(unicodedata.normalize("NFKC", "".join(instruction)).upper()):
                        found.add("ooxml.external_field")
                    instruction = []
                if kind == "end":
                    field_depth = max(0, field_depth - 1)
            elif local in ("instrText", "delInstrText"):
                instruction.append(el.text or "")
                all_instructions.append(el.text or "")
            elif local == "fldSimple":
                instr = next((v for k, v in el.attrib.items() if _local(k) == "instr"), "")
                all_instructions.append(instr)
                if _DENY_FIELDS.match(unicodedata.normalize("NFKC", instr).upper()):
                    found.add("ooxml.external_field")
            elif local in ("hlinkClick", "hlinkHover", "hlinkMouseOver"):
                if _RISKY_PPACTION.match(el.get("action", "")):
                    found.add("ooxml.ppt_action")
            elif local in ("f", "formula", "formula1", "formula2") and el.text and _formula_is_bad(el.text):
                found.add("xlsx.dangerous_formula")
            elif local == "definedName" and el.get("name") not in _ALLOWED_DEFINED_NAMES:
                found.add("xlsx.defined_name")
            el.clear()
    except defusedxml.DefusedXmlException:
        found.add("ooxml.dtd_or_entity")
        return
    except (ET.ParseError, ValueError, UnicodeError):
        found.add("verify.unparseable")
        return
    # Instructions split across runs or fields: look at all of them together as well.
    if _DDE_ANYWHERE.search(unicodedata.normalize("NFKC", "".join(all_instructions)).upper()):
        found.add("ooxml.dde_field")


def _scan_rels(data: bytes, found: set[str]) -> None:
    try:
        root = DET.fromstring(data, forbid_dtd=True)
    except defusedxml.DefusedXmlException:
        found.add("ooxml.dtd_or_entity")
        return
    except (ET.ParseError, ValueError, UnicodeError):
        found.add("verify.unparseable")
        return
    for rel in root:
        rel_type = rel.get("Type", "")
        if _BAD_REL_TYPE.search(rel_type):
            found.add("ooxml.forbidden_relationship")
        if rel.get("TargetMode") == "External":
            target = _ASCII_WS.sub("", rel.get("Target", ""))
            if rel_type != _HYPERLINK_REL or not _WEB_LINK.match(target):
                found.add("ooxml.external_relationship")


def _verify_ooxml(data: bytes, limits: Limits) -> list[str]:
    found: set[str] = set()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError):
        return ["verify.unparseable"]
    with archive:
        infos = archive.infolist()
        if (
            len(infos) > limits.max_zip_entries
            or sum(i.file_size for i in infos) > limits.max_zip_total_bytes
        ):
            return ["verify.unparseable"]
        for info in infos:
            name = info.filename
            if info.flag_bits & 0x1:
                found.add("zip.encrypted")
                continue
            if name.startswith(("/", "\\")) or ".." in name.split("/") or "\\" in name or ":" in name:
                found.add("zip.unsafe_name")
            if _BAD_MEMBER.search("/" + name):
                found.add("ooxml.forbidden_part")
            try:
                member = archive.read(info)
            except (zipfile.BadZipFile, ValueError, OSError, NotImplementedError):
                found.add("verify.unparseable")
                continue
            lower = name.lower()
            if lower == "[content_types].xml":
                try:
                    types = DET.fromstring(member, forbid_dtd=True)
                except (defusedxml.DefusedXmlException, ET.ParseError, ValueError):
                    found.add("verify.unparseable")
                    continue
                if any(_BAD_CONTENT_TYPE.search(t.get("ContentType", "")) for t in types):
                    found.add("ooxml.forbidden_content_type")
            elif lower.endswith(".rels"):
                _scan_rels(member, found)
            elif lower.endswith(".xml") or lower.endswith(".vml"):
                _scan_xml(name, member, found)
    return sorted(found)


# ---------------------------------------------------------------- images

_IMAGE_FORMAT = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF"}
_IMAGE_END = {"png": b"IEND\xaeB`\x82", "jpeg": b"\xff\xd9", "gif": b"\x3b"}
_IMAGE_METADATA_KEYS = ("exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "comment", "photoshop")


def _verify_image(data: bytes, kind: str, limits: Limits) -> list[str]:
    found: set[str] = set()
    if not data.endswith(_IMAGE_END[kind]):
        found.add("image.trailing_data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=[_IMAGE_FORMAT[kind]]) as im:
                width, height = im.size
                if width * height > limits.max_image_pixels:
                    return ["verify.unparseable"]
                im.load()
                if any(key in im.info for key in _IMAGE_METADATA_KEYS) or getattr(im, "text", None):
                    found.add("image.metadata")
                if im.getexif():
                    found.add("image.metadata")
        except Exception:  # noqa: BLE001 - our own output must decode; anything else fails verification
            return ["verify.unparseable"]
    return sorted(found)


# ---------------------------------------------------------------- text

_BAD_TEXT_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")
_CELL_LEADS = "=+-@\uff1d\uff0b\uff0d\uff20\ufe62\ufe63\ufe66\ufe6b\u2212"
_NUMBER = re.compile(r"[+-]?[\d,]*\.?\d+(?:[eE][+-]?\d+)?%?")
_DASHES = re.compile(r"[-\u2212\u30fc\u2015\u2010\uff0d]+")


def _verify_text(data: bytes, kind: str) -> list[str]:
    found: set[str] = set()
    body = data[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return ["text.not_utf8"]
    if _BAD_TEXT_CHARS.search(text.replace("\r\n", "\n").replace("\t", " ")):
        found.add("text.control_chars")
    if kind in ("csv", "tsv"):
        # Excel in a Japanese locale splits .csv on commas and .tsv on tabs.
        delimiter = "\t" if kind == "tsv" else ","
        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        except csv.Error:
            return ["verify.unparseable"]
        for row in rows:
            for cell in row:
                stripped = cell.lstrip(" \u3000")
                if cell[:1] in ("\t", "\r", "\n") or (stripped[:1] and stripped[0] in _CELL_LEADS):
                    folded = unicodedata.normalize("NFKC", stripped).strip()
                    if not (_NUMBER.fullmatch(folded) or _DASHES.fullmatch(folded)):
                        found.add("csv.formula")
    return sorted(found)


# ---------------------------------------------------------------- entry point


def verify(rebuilt: bytes | Source, kind: str, limits: Limits, detector: Detector) -> list[str]:
    """Re-parse ``rebuilt`` as ``kind`` and list every forbidden thing still in it.

    Args:
        rebuilt: bytes produced by a rebuilder (still treated as untrusted).
        kind: the type it claims to be (a key of ``detect.REBUILDERS``).
        limits: size limits for the re-parse.
        detector: libmagic handles.

    Returns:
        Sorted finding names from ``FINDINGS``; empty when the file is clean.
    """
    source = Source.of(rebuilt)
    if not source.size:
        return ["verify.unparseable"]
    expected = _EXPECTED_MIME.get(kind)
    if expected is None:
        return ["type.mismatch"]
    # libmagic's text detection is a heuristic ("\n" alone is "data"); text kinds are
    # checked by decoding instead. Binary formats must carry their own signature.
    # Detector.mime is annotated bytes, but libmagic also reads the ctypes view in place (hence the ignore).
    if kind not in _TEXT_KINDS and not detector.mime(source.buffer()).startswith(expected):
        return ["type.mismatch"]
    if kind == "pdf":
        findings = _verify_pdf(source, limits)
    elif kind in ("docx", "xlsx", "pptx"):
        findings = _verify_ooxml(source.read(), limits)
    elif kind in _IMAGE_FORMAT:
        findings = _verify_image(source.read(), kind, limits)
    else:
        findings = _verify_text(source.read(), kind)
    unknown = set(findings) - FINDINGS
    if unknown:
        raise AssertionError(f"verify produced unregistered findings: {sorted(unknown)}")
    return findings
