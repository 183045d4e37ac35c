"""OOXML packages (docx, pptx, and the first stage of xlsx): rebuild from the allow-list.

The rebuild never copies the input zip. It reads the relationship graph from
``_rels/.rels`` outwards and writes a new package holding only parts that
``ooxml_parts.RELATIONSHIPS`` keeps, with freshly written ``.rels`` files and a fresh
``[Content_Types].xml`` (so the macro-enabled main type becomes the plain one). Every
kept XML part is parsed with defusedxml; images are re-encoded with Pillow.
"""

from __future__ import annotations

import io
import posixpath
import xml.etree.ElementTree as ET  # noqa: S405 - only for the ParseError type; parsing goes through defusedxml
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import unquote
from xml.sax.saxutils import quoteattr

import defusedxml
import defusedxml.ElementTree as DET

from sanitizer import ooxml_markup
from sanitizer.errors import Code, Refused
from sanitizer.image import rebuild_image
from sanitizer.limits import Limits
from sanitizer.links import is_safe_link
from sanitizer.ooxml_parts import (
    CT_RELS,
    EXTERNAL_LABELS,
    IMAGE,
    IMAGE_TYPES_KEPT,
    MAIN_TYPES,
    OD,
    REBUILT_MAIN_TYPE,
    RELATIONSHIPS,
    Drop,
    Keep,
    R,
)
from sanitizer.report import Rebuilt, Removed, counter
from sanitizer.zipsafe import ZipMembers, read_zip

CT_NS = "{http://schemas.openxmlformats.org/package/2006/content-types}"
RELS_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_SHEET_CELL_TAG = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}c"
_WORD_STORY_TYPES = frozenset(
    OD + f"wordprocessingml.{n}+xml" for n in ("header", "footer", "footnotes", "endnotes", "comments")
) | {OD + "wordprocessingml.document.main+xml", OD + "wordprocessingml.template.main+xml",
     "application/vnd.ms-word.document.macroEnabled.main+xml",
     "application/vnd.ms-word.template.macroEnabledTemplate.main+xml"}  # fmt: skip
_WORD_SETTINGS = OD + "wordprocessingml.settings+xml"
_SLIDE_LIKE = frozenset(
    OD + f"presentationml.{n}+xml"
    for n in ("slide", "slideLayout", "slideMaster", "notesSlide", "notesMaster", "handoutMaster")
)
_WORKSHEET = OD + "spreadsheetml.worksheet+xml"
_FIELD_TAGS = frozenset({"fldSimple", "instrText", "delInstrText"})
_MAIL_MERGE_TAG = "mailMerge"
_CLICK_TAGS = frozenset({"hlinkClick", "hlinkHover", "hlinkMouseOver"})
_WORKBOOK_TYPES = frozenset(t for t, (kind, _) in MAIN_TYPES.items() if kind == "xlsx")
# Fixed timestamp: the same input always rebuilds to the same bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Relationship:
    """One ``<Relationship>`` as read (target resolved to a part name unless external)."""

    rid: str
    rtype: str
    target: str
    external: bool


@dataclass
class Package:
    """A rebuilt package before serialisation.

    Attributes:
        kind: ``docx``, ``xlsx`` or ``pptx``.
        macro_enabled: the input declared a macro-enabled main part.
        main_part: name of the main document part.
        parts: part name -> bytes, in output order.
        content_types: part name -> content type (main part already remapped).
        rels: source part (``""`` for the package) -> kept relationships.
        removed: tally of removed content.
        cells: number of ``<c>`` elements seen in worksheets (xlsx only).
    """

    kind: str
    macro_enabled: bool
    main_part: str = ""
    parts: dict[str, bytes] = field(default_factory=dict)
    content_types: dict[str, str] = field(default_factory=dict)
    rels: dict[str, list[Relationship]] = field(default_factory=dict)
    removed: Counter[Removed] = field(default_factory=counter)
    cells: int = 0


def parse_xml(data: bytes) -> ET.Element:
    """Parse a small XML part with defusedxml (no DTD, no entities)."""
    try:
        return DET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise Refused(Code.XML_FORBIDDEN_CONSTRUCT, "dtd or entity in xml part") from exc
    except (ET.ParseError, ValueError, UnicodeError) as exc:
        raise Refused(Code.OOXML_MALFORMED, "xml part not well-formed") from exc


def _count_cells(data: bytes, limits: Limits, already: int) -> int:
    """Stream a worksheet with defusedxml's iterparse, counting cells without building a tree."""
    count = already
    try:
        for _event, element in DET.iterparse(io.BytesIO(data), events=("end",), forbid_dtd=True):
            if element.tag == _SHEET_CELL_TAG:
                count += 1
                if count > limits.max_xlsx_cells:
                    raise Refused(Code.XLSX_TOO_MANY_CELLS, "cell count over limit")
            element.clear()
    except defusedxml.DefusedXmlException as exc:
        raise Refused(Code.XML_FORBIDDEN_CONSTRUCT, "dtd or entity in worksheet") from exc
    except (ET.ParseError, ValueError, UnicodeError) as exc:
        raise Refused(Code.OOXML_MALFORMED, "worksheet not well-formed") from exc
    return count


class _ContentTypes:
    def __init__(self, data: bytes | None) -> None:
        if data is None:
            raise Refused(Code.OOXML_MALFORMED, "no [Content_Types].xml")
        root = parse_xml(data)
        self.defaults: dict[str, str] = {}
        self.overrides: dict[str, str] = {}
        for el in root:
            if el.tag == CT_NS + "Default":
                self.defaults[el.get("Extension", "").lower()] = el.get("ContentType", "")
            elif el.tag == CT_NS + "Override":
                self.overrides[el.get("PartName", "").lstrip("/").lower()] = el.get("ContentType", "")

    def of(self, part: str) -> str | None:
        found = self.overrides.get(part.lower())
        if found is not None:
            return found
        ext = posixpath.splitext(part)[1].lstrip(".").lower()
        return self.defaults.get(ext)


def rels_part_for(part: str) -> str:
    """``word/document.xml`` -> ``word/_rels/document.xml.rels``; ``""`` -> ``_rels/.rels``."""
    directory, name = posixpath.split(part)
    return posixpath.join(directory, "_rels", name + ".rels")


def _resolve(source: str, target: str) -> str:
    target = unquote(target.split("#", 1)[0])
    if not target:
        raise Refused(Code.OOXML_MALFORMED, "empty relationship target")
    joined = (
        target.lstrip("/") if target.startswith("/") else posixpath.join(posixpath.dirname(source), target)
    )
    resolved = posixpath.normpath(joined)
    if resolved.startswith("../") or resolved in ("..", ".") or "\\" in resolved:
        raise Refused(Code.ZIP_UNSAFE_NAME, "relationship target outside the package")
    return resolved


def read_relationships(members: ZipMembers, source: str) -> list[Relationship]:
    """Relationships of ``source`` (``""`` = package), targets resolved; [] if it has none."""
    data = members.get(rels_part_for(source))
    if data is None:
        return []
    found: list[Relationship] = []
    seen: set[str] = set()
    for el in parse_xml(data):
        if el.tag != RELS_NS + "Relationship":
            continue
        rid, rtype, target = el.get("Id", ""), el.get("Type", ""), el.get("Target", "")
        if not rid or rid in seen:
            raise Refused(Code.OOXML_MALFORMED, "missing or duplicate relationship id")
        seen.add(rid)
        external = el.get("TargetMode", "Internal") == "External"
        found.append(Relationship(rid, rtype, target if external else _resolve(source, target), external))
    return found


def _external_verdict(rel: Relationship) -> Removed | None:
    if rel.rtype == R + "hyperlink" and is_safe_link(rel.target):
        return None
    return EXTERNAL_LABELS.get(rel.rtype, Removed.EXTERNAL_LINK)


class _Walker:
    """Breadth-first walk of the relationship graph, deciding keep/drop/refuse per edge."""

    def __init__(self, members: ZipMembers, limits: Limits, kind: str) -> None:
        self.members = members
        self.limits = limits
        self.content_types = _ContentTypes(members.get("[Content_Types].xml"))
        self.package = Package(kind=kind, macro_enabled=False)
        self.dropped: dict[str, set[str]] = {}
        self.images: dict[str, bytes | None] = {}

    def walk(self) -> Package:
        queue = [""]
        visited = {""}
        while queue:
            source = queue.pop(0)
            kept: list[Relationship] = []
            for rel in read_relationships(self.members, source):
                target = self._decide(source, rel)
                if target is None:
                    self.dropped.setdefault(source, set()).add(rel.rid)
                    continue
                kept.append(rel)
                if not rel.external and target not in visited:
                    visited.add(target)
                    queue.append(target)
            self.package.rels[source] = kept
        if not self.package.main_part:
            raise Refused(Code.OOXML_MALFORMED, "no main document part")
        return self.package

    def _decide(self, source: str, rel: Relationship) -> str | None:
        """Target part to keep, or None to drop. Raises Refused for unknown parts."""
        pkg = self.package
        if rel.external:
            if pkg.kind == "xlsx" and rel.rtype == R + "hyperlink":
                # openpyxl resolves every cell hyperlink's r:id and fails on a missing
                # one; worksheets are too big to edit as a DOM. Keep the relationship for
                # stage 2, whose copy keeps only http(s)/mailto targets (xlsx.py).
                return rel.target
            verdict = _external_verdict(rel)
            if verdict is None:
                return rel.target
            pkg.removed[verdict] += 1
            return None
        policy = RELATIONSHIPS.get(rel.rtype)
        if policy is None:
            raise Refused(Code.OOXML_UNKNOWN_PART, "unknown relationship type")
        if isinstance(policy, Drop):
            pkg.removed[self._drop_label(rel, policy)] += 1
            return None
        data = self.members.get(rel.target)
        if data is None:
            return None  # dangling relationship: nothing to copy, nothing to point at
        content_type = self.content_types.of(rel.target) or ""
        if policy == IMAGE:
            return self._keep_image(rel.target, content_type, data)
        assert isinstance(policy, Keep)
        if policy.content_types is None:
            return self._keep_main(source, rel.target, content_type, data)
        if content_type not in policy.content_types:
            raise Refused(Code.OOXML_UNKNOWN_PART, "unexpected content type for relationship")
        if policy.kinds is not None and pkg.kind not in policy.kinds:
            raise Refused(Code.OOXML_UNKNOWN_PART, "part belongs to another application")
        pkg.parts.setdefault(rel.target, data)
        pkg.content_types[rel.target] = content_type
        return rel.target

    def _drop_label(self, rel: Relationship, policy: Drop) -> Removed:
        """Say DDE rather than "external link" when an Excel external link is a DDE link."""
        if rel.rtype == R + "externalLink":
            data = self.members.get(rel.target)
            if data is not None and any(el.tag.endswith("}ddeLink") for el in parse_xml(data).iter()):
                return Removed.DDE
        return policy.removed

    def _keep_main(self, source: str, part: str, content_type: str, data: bytes) -> str:
        pkg = self.package
        if source != "" or pkg.main_part:
            raise Refused(Code.OOXML_MALFORMED, "officeDocument relationship in the wrong place")
        main = MAIN_TYPES.get(content_type)
        if main is None:
            raise Refused(Code.OOXML_UNKNOWN_PART, "unknown main document type")
        if main[0] != pkg.kind:
            raise Refused(Code.TYPE_MISMATCH, "main part is another application")
        pkg.macro_enabled = main[1]
        pkg.main_part = part
        pkg.parts[part] = data
        pkg.content_types[part] = REBUILT_MAIN_TYPE[pkg.kind]
        return part

    def _keep_image(self, part: str, content_type: str, data: bytes) -> str | None:
        pkg = self.package
        if part not in self.images:
            kind = IMAGE_TYPES_KEPT.get(content_type)
            if kind is None:
                if not content_type.startswith("image/"):
                    raise Refused(Code.OOXML_UNKNOWN_PART, "image relationship to a non-image")
                pkg.removed[Removed.UNSUPPORTED_IMAGE] += 1
                self.images[part] = None
            else:
                try:
                    rebuilt = rebuild_image(data, self.limits, kind)
                except Refused:
                    pkg.removed[Removed.UNSUPPORTED_IMAGE] += 1
                    self.images[part] = None
                else:
                    pkg.removed.update(rebuilt.removed)
                    self.images[part] = rebuilt.data
        clean = self.images[part]
        if clean is None:
            return None
        pkg.parts[part] = clean
        pkg.content_types[part] = content_type
        return part


def _edit_xml_parts(pkg: Package, dropped: dict[str, set[str]], limits: Limits, images: set[str]) -> None:
    """Validate every kept XML part with defusedxml; edit those that need it."""
    for part in list(pkg.parts):
        if part in images:
            continue
        data = pkg.parts[part]
        content_type = pkg.content_types[part]
        if content_type == _WORKSHEET:
            # Worksheets can be huge; stream them. openpyxl rebuilds them afterwards, so
            # dangling references to dropped relationships are harmless there.
            pkg.cells = _count_cells(data, limits, pkg.cells)
            continue
        root = parse_xml(data)
        dropped_here = dropped.get(part, set())
        wants_refs = bool(dropped_here) and any(
            value in dropped_here
            for el in root.iter()
            for key, value in el.attrib.items()
            if key.startswith("{" + ooxml_markup.REL_NS + "}") or key == "{" + ooxml_markup.O + "}relid"
        )
        # Local names: an element in a mangled namespace is still looked at.
        tags = {el.tag.rsplit("}", 1)[-1] for el in root.iter()} if pkg.kind != "xlsx" else set()
        wants_fields = content_type in _WORD_STORY_TYPES and bool(tags & _FIELD_TAGS)
        wants_merge = content_type == _WORD_SETTINGS and _MAIL_MERGE_TAG in tags
        wants_actions = content_type in _SLIDE_LIKE and bool(tags & _CLICK_TAGS)
        if not (wants_refs or wants_fields or wants_merge or wants_actions):
            continue
        doc = ooxml_markup.parse_dom(data)
        changed = 0
        if wants_refs:
            changed += ooxml_markup.drop_references(doc, dropped_here)
            if content_type in _WORKBOOK_TYPES:
                # Sheet positions moved (a macro sheet went), so localSheetId values in
                # defined names would now point at the wrong sheets: drop them all.
                names = ooxml_markup.remove_defined_names(doc)
                pkg.removed[Removed.DEFINED_NAME] += names
                changed += names
        if wants_fields:
            flattened = ooxml_markup.flatten_fields(doc)
            pkg.removed.update(flattened)
            changed += sum(flattened.values())
        if wants_merge:
            merges = ooxml_markup.remove_mail_merge(doc)
            pkg.removed[Removed.MAIL_MERGE] += merges
            changed += merges
        if wants_actions:
            actions = ooxml_markup.strip_ppt_actions(doc)
            pkg.removed[Removed.PPT_ACTION] += actions
            changed += actions
        if changed:
            pkg.parts[part] = ooxml_markup.serialise(doc)


def _count_unreferenced(members: ZipMembers, pkg: Package) -> None:
    """Members nothing kept points at are not written; note the macro-ish ones in the report."""
    for name in members.members:
        lower = name.lower()
        if name in pkg.parts or lower == "[content_types].xml" or lower.endswith(".rels"):
            continue
        if lower.endswith("vbaproject.bin") and not pkg.removed[Removed.MACRO]:
            pkg.removed[Removed.MACRO] += 1


def rebuild_package(untrusted: bytes, limits: Limits, kind: str) -> Package:
    """Check the zip, walk the relationship graph and return the kept parts.

    Args:
        untrusted: the uploaded bytes.
        limits: zip and cell limits.
        kind: ``docx``, ``xlsx`` or ``pptx`` as detected; the main part must agree.

    Returns:
        The allow-listed package, not yet serialised.

    Raises:
        Refused: on anything the allow-list does not know, and on zip or XML abuse.
    """
    members = read_zip(untrusted, limits)
    walker = _Walker(members, limits, kind)
    pkg = walker.walk()
    images = {p for p, data in walker.images.items() if data is not None}
    _edit_xml_parts(pkg, walker.dropped, limits, images)
    _count_unreferenced(members, pkg)
    if pkg.content_types[pkg.main_part] not in REBUILT_MAIN_TYPE.values():
        raise Refused(Code.INTERNAL_ERROR, "main type not remapped")
    return pkg


def _rels_xml(rels: list[Relationship], source: str) -> bytes:
    lines = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>',
             '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">']  # fmt: skip
    for rel in rels:
        if rel.external:
            target = rel.target
            mode = ' TargetMode="External"'
        else:
            # Written relative to the source's folder, as Office does.
            target = posixpath.relpath(rel.target, posixpath.dirname(source) or ".")
            mode = ""
        lines.append(
            f"<Relationship Id={quoteattr(rel.rid)} Type={quoteattr(rel.rtype)} Target={quoteattr(target)}{mode}/>"
        )
    lines.append("</Relationships>")
    return "".join(lines).encode("utf-8")


def _content_types_xml(pkg: Package) -> bytes:
    lines = ['<?xml version="1.0" encoding="UTF-8" standalone="yes"?>',
             '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">',
             f'<Default Extension="rels" ContentType="{CT_RELS}"/>',
             '<Default Extension="xml" ContentType="application/xml"/>']  # fmt: skip
    for part, content_type in pkg.content_types.items():
        lines.append(f"<Override PartName={quoteattr('/' + part)} ContentType={quoteattr(content_type)}/>")
    lines.append("</Types>")
    return "".join(lines).encode("utf-8")


def write_package(pkg: Package) -> bytes:
    """Serialise ``pkg`` as a new zip: content types, package rels and main part first.

    libmagic recognises Word/Excel/PowerPoint by the first members, so the order matters
    (corpus file oletools-external-oleobject-link.docx is "Microsoft OOXML" for that reason).
    """
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:

        def put(name: str, data: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)

        put("[Content_Types].xml", _content_types_xml(pkg))
        put("_rels/.rels", _rels_xml(pkg.rels.get("", []), ""))
        order = [pkg.main_part] + [p for p in pkg.parts if p != pkg.main_part]
        for part in order:
            put(part, pkg.parts[part])
            rels = pkg.rels.get(part)
            if rels:
                put(rels_part_for(part), _rels_xml(rels, part))
    return out.getvalue()


def _rebuild(untrusted: bytes, limits: Limits, kind: str) -> Rebuilt:
    pkg = rebuild_package(untrusted, limits, kind)
    return Rebuilt(data=write_package(pkg), kind=kind, removed=pkg.removed)


def rebuild_docx(untrusted: bytes, limits: Limits) -> Rebuilt:
    """Rebuild a Word document (docx, docm, dotx, dotm) as a macro-free .docx.

    Args:
        untrusted: the uploaded bytes.
        limits: zip and image limits.

    Returns:
        The rebuilt package and the tally of what was removed.
    """
    return _rebuild(untrusted, limits, "docx")


def rebuild_pptx(untrusted: bytes, limits: Limits) -> Rebuilt:
    """Rebuild a PowerPoint deck (pptx, pptm, ppsx, potx...) as a macro-free .pptx.

    Args:
        untrusted: the uploaded bytes.
        limits: zip and image limits.

    Returns:
        The rebuilt package and the tally of what was removed.
    """
    return _rebuild(untrusted, limits, "pptx")
