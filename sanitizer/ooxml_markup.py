"""Edits inside kept OOXML XML parts.

Parts are parsed with ``defusedxml`` only (DTDs, entities and external references are
refused). Edits use ``defusedxml.minidom`` because it keeps every namespace declaration
and prefix exactly as written: ElementTree renames prefixes and drops unused
declarations, which breaks ``mc:Ignorable="w14 wp14"`` and makes Word call the file
corrupt.

Three kinds of edit:

- references to relationships the rebuild dropped (OLE objects, ActiveX, external
  templates, unsafe hyperlinks, unsupported images...) are removed, together with the
  smallest enclosing element that would otherwise be left broken;
- Word field codes outside a small allow-list are *flattened*: the instruction goes,
  the displayed result stays. This catches DDE/DDEAUTO in any case or width, split
  across runs, in ``w:fldSimple/@w:instr``, and nested-field obfuscation, because the
  decision is made on the whole NFKC-folded instruction of each field. Fields and
  actions are matched by local name whatever their namespace: a mangled namespace
  must not hide one from this code while the (namespace-blind) verifier still sees it;
- PowerPoint click/hover actions that run programs or macros, and Word mail-merge
  data-source settings, are removed.
"""

from __future__ import annotations

import re
import unicodedata
import xml.parsers.expat
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from xml.dom import Node

import defusedxml
import defusedxml.minidom

from sanitizer.errors import Code, Refused
from sanitizer.links import is_safe_link
from sanitizer.report import Removed

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
A = "http://schemas.openxmlformats.org/drawingml/2006/main"
P = "http://schemas.openxmlformats.org/presentationml/2006/main"
C = "http://schemas.openxmlformats.org/drawingml/2006/chart"
X = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
V = "urn:schemas-microsoft-com:vml"
O = "urn:schemas-microsoft-com:office:office"  # noqa: E741 - the conventional "o:" prefix
XDR = "http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"

# minidom's typeshed stubs model every node kind separately and fight ordinary tree
# walking; the DOM here is only ever walked and pruned, so nodes are typed loosely.
Document = Any
Element = Any

# Elements whose reference is optional: drop just the attribute, keep the element.
_DROP_ATTRIBUTE_ONLY = frozenset(
    {(W, "hyperlink"), (A, "blip"), (V, "imagedata"), (V, "fill"), (X, "pageSetup")}
)
# Elements that exist only to carry the reference: remove them.
_REMOVE_SELF = frozenset(
    {
        (A, "hlinkClick"), (A, "hlinkHover"), (A, "hlinkMouseOver"), (A, "snd"),
        (A, "videoFile"), (A, "audioFile"), (A, "wavAudioFile"), (A, "quickTimeFile"),
        (W, "attachedTemplate"), (W, "embedRegular"), (W, "embedBold"), (W, "embedItalic"),
        (W, "embedBoldItalic"), (W, "subDoc"), (W, "altChunk"), (W, "printerSettings"),
        (P, "tags"), (P, "custData"), (P, "control"), (C, "externalData"),
        (X, "sheet"), (X, "externalReference"), (X, "pivotCache"), (X, "legacyDrawing"),
        (X, "legacyDrawingHF"), (X, "control"), (X, "oleObject"),
    }
)  # fmt: skip
# Otherwise remove the nearest of these ancestors (the object as a whole: an ActiveX
# w:control or an o:OLEObject takes its w:object, preview image included), or the
# element itself when there is none.
_ENCLOSING = frozenset(
    {
        (W, "object"), (W, "pict"), (W, "drawing"), (P, "graphicFrame"), (P, "pic"),
        (A, "ext"), (P, "sndAc"), (P, "embeddedFont"),
    }
)  # fmt: skip
# An Excel drawing anchor holds exactly one object; whatever it holds lost its target,
# the anchor goes (openpyxl cannot load an anchor whose picture points nowhere).
_ANCHORS = frozenset({(XDR, "twoCellAnchor"), (XDR, "oneCellAnchor"), (XDR, "absoluteAnchor")})
# If removing the reference empties one of these wrappers, the wrapper goes too.
_WRAPPERS = frozenset(
    {(X, "oleObjects"), (X, "controls"), (P, "controls"), (X, "externalReferences"), (X, "pivotCaches")}
)

# Word fields that only compute or display something from inside the document.
# Everything else (DDE, DDEAUTO, INCLUDETEXT, INCLUDEPICTURE, IMPORT, LINK, DATABASE,
# MACROBUTTON, PRINT, EMBED, AUTOTEXT, unknown or obfuscated keywords) is flattened.
SAFE_FIELDS = frozenset(
    """PAGE NUMPAGES SECTIONPAGES SECTION TOC TOA TC TA XE INDEX REF PAGEREF NOTEREF STYLEREF
    SEQ DATE TIME CREATEDATE SAVEDATE PRINTDATE EDITTIME AUTHOR TITLE SUBJECT KEYWORDS COMMENTS
    LASTSAVEDBY NUMWORDS NUMCHARS FILESIZE FILENAME TEMPLATE LISTNUM AUTONUM AUTONUMLGL
    AUTONUMOUT SYMBOL EQ ADVANCE FORMTEXT FORMCHECKBOX FORMDROPDOWN HYPERLINK GOTOBUTTON
    BIDIOUTLINE DOCPROPERTY DOCVARIABLE USERNAME USERINITIALS USERADDRESS MERGEFIELD MERGEREC
    MERGESEQ NEXT NEXTIF SKIPIF SET IF COMPARE = CITATION BIBLIOGRAPHY BARCODE DISPLAYBARCODE
    MERGEBARCODE ADDRESSBLOCK GREETINGLINE ASK FILLIN QUOTE INFO PRIVATE SHAPE""".split()
)
EXTERNAL_FIELDS = frozenset({"INCLUDETEXT", "INCLUDEPICTURE", "INCLUDE", "IMPORT", "LINK", "DATABASE", "RD"})
_DDE_WORD_RE = re.compile(r"\bDDE(?:AUTO)?\b")
_KEYWORD_RE = re.compile(r'=|[^\s\\"=]+')
_FIELD_TOKEN_RE = re.compile(r'"([^"]*)"|(\S+)')
_SAFE_PPACTION_RE = re.compile(
    r"ppaction://(?:hlinksldjump|noaction|hlinkshowjump\?jump=[a-z]+|customshow\?[^\s]*)", re.IGNORECASE
)


def parse_dom(data: bytes) -> Document:
    """Parse one XML part into a namespace-faithful DOM, refusing DTDs and entities.

    Raises:
        Refused: ``XML_FORBIDDEN_CONSTRUCT`` or ``OOXML_MALFORMED``.
    """
    try:
        return defusedxml.minidom.parseString(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except defusedxml.DefusedXmlException as exc:
        raise Refused(Code.XML_FORBIDDEN_CONSTRUCT, "dtd or entity in xml part") from exc
    except (xml.parsers.expat.ExpatError, ValueError, UnicodeError) as exc:
        raise Refused(Code.OOXML_MALFORMED, "xml part not well-formed") from exc


def serialise(doc: Document) -> bytes:
    """UTF-8 bytes with an XML declaration."""
    return doc.toxml(encoding="UTF-8")


def iter_elements(root: Element) -> Iterator[Element]:
    """Elements under and including ``root`` in document order (iterative: no recursion limit)."""
    stack: list[Element] = [root]
    while stack:
        node = stack.pop()
        if node.nodeType == Node.ELEMENT_NODE:
            yield node
            stack.extend(reversed(node.childNodes))


def _qname(el: Element) -> tuple[str | None, str | None]:
    return (el.namespaceURI, el.localName)


def _detach(node: Element) -> None:
    parent = node.parentNode
    if parent is not None:
        parent.removeChild(node)


def _nearest(el: Element, names: frozenset[tuple[str, str]]) -> Element | None:
    node: Element | None = el
    while node is not None and node.nodeType == Node.ELEMENT_NODE:
        if _qname(node) in names:
            return node
        node = node.parentNode
    return None


def _reference_attributes(el: Element) -> list[tuple[str, str, str]]:
    """(namespace, local name, value) of attributes that name a relationship id."""
    found = []
    for (ns, local), value in el.attributes.itemsNS():
        if ns == REL_NS or (ns == O and local == "relid"):
            found.append((ns, local, value))
    return found


def drop_references(doc: Document, dropped_ids: set[str]) -> int:
    """Remove what points at dropped relationships; return how many references were cut."""
    if not dropped_ids:
        return 0
    cuts: list[tuple[Element, str, str]] = []
    for el in iter_elements(doc.documentElement):
        for ns, local, value in _reference_attributes(el):
            if value in dropped_ids:
                cuts.append((el, ns, local))
    for el, ns, local in cuts:
        name = _qname(el)
        anchor = _nearest(el, _ANCHORS)
        if anchor is not None:
            _detach(anchor)
            continue
        if name in _DROP_ATTRIBUTE_ONLY:
            el.removeAttributeNS(ns, local)
            continue
        target = el if name in _REMOVE_SELF else (_nearest(el, _ENCLOSING) or el)
        wrapper = target.parentNode
        _detach(target)
        if (
            wrapper is not None
            and wrapper.nodeType == Node.ELEMENT_NODE
            and _qname(wrapper) in _WRAPPERS
            and not any(child.nodeType == Node.ELEMENT_NODE for child in wrapper.childNodes)
        ):
            _detach(wrapper)
    _prune_empty_alternate_content(doc)
    return len(cuts)


def _prune_empty_alternate_content(doc: Document) -> None:
    """An mc:AlternateContent whose every branch is now empty goes too."""
    for el in list(iter_elements(doc.documentElement)):
        if _qname(el) != (MC, "AlternateContent"):
            continue
        branches = [c for c in el.childNodes if c.nodeType == Node.ELEMENT_NODE]
        if all(not any(g.nodeType == Node.ELEMENT_NODE for g in b.childNodes) for b in branches):
            _detach(el)


def _hyperlink_field_is_safe(instruction: str) -> bool:
    """HYPERLINK "target" [\\l "bookmark"] [\\o "tip"]: the target must be http(s)/mailto."""
    tokens = [q if q or not b else b for q, b in _FIELD_TOKEN_RE.findall(instruction)][1:]
    skip_next = False
    for token in tokens:
        if skip_next:
            skip_next = False
            continue
        if token.lower() in ("\\l", "\\o", "\\t"):
            skip_next = True
            continue
        if token.startswith("\\"):
            continue
        return is_safe_link(token)
    return True  # only a bookmark (\l) or nothing: stays inside the document


def field_verdict(instruction: str, *, nested: bool = False) -> Removed | None:
    """``None`` if a Word field may stay, else the report category it is removed under.

    Args:
        instruction: the whole field instruction (all ``w:instrText`` pieces joined).
        nested: another field appears inside the instruction; the instruction is then
            computed at run time, so it cannot be judged and is flattened.
    """
    folded = unicodedata.normalize("NFKC", instruction).strip()
    if _DDE_WORD_RE.search(folded.upper()):
        return Removed.DDE
    if nested:
        return Removed.FIELD_CODE
    if not folded:
        return None
    match = _KEYWORD_RE.match(folded)
    keyword = match.group(0).upper() if match else ""
    if keyword in EXTERNAL_FIELDS:
        return Removed.EXTERNAL_LINK
    if keyword == "HYPERLINK":
        return None if _hyperlink_field_is_safe(folded) else Removed.UNSAFE_URI
    return None if keyword in SAFE_FIELDS else Removed.FIELD_CODE


@dataclass
class _Field:
    begin: int
    instruction: list[str] = field(default_factory=list)
    separate: int | None = None
    nested: bool = False


def _attribute(el: Element, local: str) -> str:
    """An attribute by local name, whatever its namespace (or none)."""
    for (_ns, name), value in el.attributes.itemsNS():
        if name == local:
            return str(value)
    return ""


def _text_of(el: Element) -> str:
    return "".join(n.data for n in el.childNodes if n.nodeType in (Node.TEXT_NODE, Node.CDATA_SECTION_NODE))


def _unwrap(el: Element) -> None:
    parent = el.parentNode
    if parent is None:
        return
    for child in list(el.childNodes):
        parent.insertBefore(child, el)
    parent.removeChild(el)


def flatten_fields(doc: Document) -> Counter[Removed]:
    """Flatten every Word field outside the allow-list; keep its displayed result.

    Returns:
        Tally of flattened fields by category (``DDE``, ``EXTERNAL_LINK``, ``FIELD_CODE``...).
    """
    removed: Counter[Removed] = Counter()
    root = doc.documentElement
    for simple in [e for e in iter_elements(root) if e.localName == "fldSimple"]:
        verdict = field_verdict(_attribute(simple, "instr"))
        if verdict is not None:
            removed[verdict] += 1
            _unwrap(simple)

    # Complex fields span runs (and paragraphs): begin, instruction pieces, separate,
    # result, end. Work on the flat sequence of run children in document order.
    sequence: list[tuple[str, Element]] = []
    for el in iter_elements(root):
        parent = el.parentNode
        if parent is None or parent.localName != "r" or el.localName == "rPr":
            continue
        name = el.localName
        if name == "fldChar":
            sequence.append((_attribute(el, "fldCharType"), el))
        elif name in ("instrText", "delInstrText"):
            sequence.append(("instr", el))
        else:
            sequence.append(("content", el))

    doomed: list[Element] = []
    stack: list[_Field] = []
    for pos, (kind, el) in enumerate(sequence):
        top = stack[-1] if stack else None
        if kind == "begin":
            if top is not None and top.separate is None:
                top.nested = True
            stack.append(_Field(begin=pos))
        elif kind == "instr" and top is not None and top.separate is None:
            top.instruction.append(_text_of(el))
        elif kind == "separate" and top is not None and top.separate is None:
            top.separate = pos
        elif kind == "end" and top is not None:
            stack.pop()
            verdict = field_verdict("".join(top.instruction), nested=top.nested)
            if verdict is not None:
                removed[verdict] += 1
                stop = top.separate if top.separate is not None else pos
                doomed.extend(e for _, e in sequence[top.begin : stop + 1])
                doomed.append(el)
    for unterminated in stack:
        # A field without an end (oletools#263): flatten it whatever it says.
        removed[field_verdict("".join(unterminated.instruction), nested=True) or Removed.FIELD_CODE] += 1
        stop = unterminated.separate if unterminated.separate is not None else len(sequence) - 1
        doomed.extend(e for k, e in sequence[unterminated.begin : stop + 1] if k != "content")
    for el in doomed:
        _detach(el)
    return removed


def remove_defined_names(doc: Document) -> int:
    """Drop ``definedNames`` from a workbook part; return how many names went."""
    count = 0
    for el in [e for e in iter_elements(doc.documentElement) if _qname(e) == (X, "definedNames")]:
        count += sum(1 for c in el.childNodes if c.nodeType == Node.ELEMENT_NODE)
        _detach(el)
    return count


def remove_mail_merge(doc: Document) -> int:
    """Drop ``w:mailMerge`` (ODBC/OLE DB connection string and SQL query run on open)."""
    found = [e for e in iter_elements(doc.documentElement) if e.localName == "mailMerge"]
    for el in found:
        _detach(el)
    return len(found)


def strip_ppt_actions(doc: Document) -> int:
    """Drop click/hover actions that run programs, macros, OLE verbs or open other files."""
    doomed = []
    for el in iter_elements(doc.documentElement):
        if el.localName in ("hlinkClick", "hlinkHover", "hlinkMouseOver"):
            action = _attribute(el, "action")
            if action and not _SAFE_PPACTION_RE.fullmatch(action.strip()):
                doomed.append(el)
    for el in doomed:
        _detach(el)
    return len(doomed)
