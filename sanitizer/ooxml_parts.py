"""The OOXML allow-list: which relationships and parts a rebuilt package may contain.

The rebuild walks the relationship graph from ``_rels/.rels``. Every relationship type
falls in exactly one of three classes:

- ``KEEP``: the target part is copied (XML parts after a defusedxml parse and, when
  needed, an edit; images after a Pillow re-encode). The target's content type must be
  one the table expects for that relationship, otherwise the file is refused.
- ``DROP``: the relationship and its target never reach the output, and the report
  says what was removed. This covers active content (VBA, XLM, ActiveX, OLE, customUI,
  external links, add-ins) and inert-but-opaque parts we have no use for (printer
  settings, thumbnails, custom XML, embedded fonts).
- anything else: **refused** as ``ooxml_unknown_part`` (mat2's "unknown member = abort"
  rule; Glasswall's "Disallow = do not regenerate"). A part that no kept relationship
  reaches is never written, so unreferenced members are dropped, not refused: nothing
  in the output can point at them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sanitizer.report import Removed

R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships/"
MS06 = "http://schemas.microsoft.com/office/2006/relationships/"
MS07 = "http://schemas.microsoft.com/office/2007/relationships/"
MS11 = "http://schemas.microsoft.com/office/2011/relationships/"

CT_RELS = "application/vnd.openxmlformats-package.relationships+xml"
OD = "application/vnd.openxmlformats-officedocument."

# Main document content types: kind, macro-enabled?, and what the rebuilt package declares.
MAIN_TYPES: dict[str, tuple[str, bool]] = {
    OD + "wordprocessingml.document.main+xml": ("docx", False),
    OD + "wordprocessingml.template.main+xml": ("docx", False),
    "application/vnd.ms-word.document.macroEnabled.main+xml": ("docx", True),
    "application/vnd.ms-word.template.macroEnabledTemplate.main+xml": ("docx", True),
    OD + "spreadsheetml.sheet.main+xml": ("xlsx", False),
    OD + "spreadsheetml.template.main+xml": ("xlsx", False),
    "application/vnd.ms-excel.sheet.macroEnabled.main+xml": ("xlsx", True),
    "application/vnd.ms-excel.template.macroEnabled.main+xml": ("xlsx", True),
    OD + "presentationml.presentation.main+xml": ("pptx", False),
    OD + "presentationml.slideshow.main+xml": ("pptx", False),
    OD + "presentationml.template.main+xml": ("pptx", False),
    "application/vnd.ms-powerpoint.presentation.macroEnabled.main+xml": ("pptx", True),
    "application/vnd.ms-powerpoint.slideshow.macroEnabled.main+xml": ("pptx", True),
    "application/vnd.ms-powerpoint.template.macroEnabled.main+xml": ("pptx", True),
}
REBUILT_MAIN_TYPE: dict[str, str] = {
    "docx": OD + "wordprocessingml.document.main+xml",
    "xlsx": OD + "spreadsheetml.sheet.main+xml",
    "pptx": OD + "presentationml.presentation.main+xml",
}

IMAGE_TYPES_KEPT: dict[str, str] = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif"}


@dataclass(frozen=True, slots=True)
class Keep:
    """Copy the target if its content type is one of ``content_types`` (``None``: main type).

    ``kinds`` limits the relationship to packages of those kinds (a worksheet has no
    business inside a Word document); ``None`` means any.
    """

    content_types: frozenset[str] | None
    kinds: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Drop:
    """Leave the target out and report it as ``removed``."""

    removed: Removed


def _ct(*names: str) -> frozenset[str]:
    return frozenset(OD + n if not n.startswith("application/") else n for n in names)


DOCX = frozenset({"docx"})
XLSX = frozenset({"xlsx"})
PPTX = frozenset({"pptx"})


IMAGE = "image"  # marker: the target is an image, decided by content type

RELATIONSHIPS: dict[str, Keep | Drop | str] = {
    # -- package level
    R + "officeDocument": Keep(None),
    PKG + "metadata/core-properties": Keep(
        frozenset({"application/vnd.openxmlformats-package.core-properties+xml"})
    ),
    R + "extended-properties": Keep(_ct("extended-properties+xml")),
    R + "custom-properties": Drop(Removed.AUX_PART),
    PKG + "metadata/thumbnail": Drop(Removed.AUX_PART),
    PKG + "digital-signature/origin": Drop(Removed.SIGNATURE),
    # -- shared by all three applications
    R + "theme": Keep(_ct("theme+xml")),
    R + "themeOverride": Keep(_ct("themeOverride+xml")),
    R + "image": IMAGE,
    R + "chart": Keep(_ct("drawingml.chart+xml")),
    R + "chartUserShapes": Keep(_ct("drawingml.chartshapes+xml")),
    MS11 + "chartStyle": Keep(frozenset({"application/vnd.ms-office.chartstyle+xml"})),
    MS11 + "chartColorStyle": Keep(frozenset({"application/vnd.ms-office.chartcolorstyle+xml"})),
    R + "diagramData": Keep(_ct("drawingml.diagramData+xml")),
    R + "diagramLayout": Keep(_ct("drawingml.diagramLayout+xml")),
    R + "diagramQuickStyle": Keep(_ct("drawingml.diagramStyle+xml")),
    R + "diagramColors": Keep(_ct("drawingml.diagramColors+xml")),
    MS07 + "diagramDrawing": Keep(frozenset({"application/vnd.ms-office.drawingml.diagramDrawing+xml"})),
    R + "hyperlink": Drop(Removed.EXTERNAL_LINK),  # kept only when external and http(s)/mailto
    # -- WordprocessingML
    R + "styles": Keep(_ct("wordprocessingml.styles+xml", "spreadsheetml.styles+xml")),
    MS07 + "stylesWithEffects": Keep(frozenset({"application/vnd.ms-word.stylesWithEffects+xml"}), DOCX),
    R + "numbering": Keep(_ct("wordprocessingml.numbering+xml"), DOCX),
    R + "settings": Keep(_ct("wordprocessingml.settings+xml"), DOCX),
    R + "fontTable": Keep(_ct("wordprocessingml.fontTable+xml"), DOCX),
    R + "footnotes": Keep(_ct("wordprocessingml.footnotes+xml"), DOCX),
    R + "endnotes": Keep(_ct("wordprocessingml.endnotes+xml"), DOCX),
    R + "comments": Keep(
        _ct("wordprocessingml.comments+xml", "presentationml.comments+xml", "spreadsheetml.comments+xml")
    ),
    MS11 + "commentsExtended": Keep(
        frozenset(
            {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.commentsExtended+xml",
                "application/vnd.ms-word.commentsExtended+xml",
            }
        ),
        DOCX,
    ),
    "http://schemas.microsoft.com/office/2016/09/relationships/commentsIds": Keep(
        frozenset(
            {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.commentsIds+xml",
                "application/vnd.ms-word.commentsIds+xml",
            }
        ),
        DOCX,
    ),
    "http://schemas.microsoft.com/office/2018/08/relationships/commentsExtensible": Keep(
        frozenset(
            {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.commentsExtensible+xml",
                "application/vnd.ms-word.commentsExtensible+xml",
            }
        ),
        DOCX,
    ),
    MS11 + "people": Keep(
        frozenset(
            {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.people+xml",
                "application/vnd.ms-word.people+xml",
            }
        ),
        DOCX,
    ),
    R + "header": Keep(_ct("wordprocessingml.header+xml"), DOCX),
    R + "footer": Keep(_ct("wordprocessingml.footer+xml"), DOCX),
    R + "webSettings": Drop(Removed.AUX_PART),  # frames and web options; Word does not need it
    R + "glossaryDocument": Drop(Removed.AUX_PART),  # building blocks: a second hidden document
    R + "customXml": Drop(Removed.AUX_PART),
    R + "customXmlProps": Drop(Removed.AUX_PART),
    R + "font": Drop(Removed.EMBEDDED_FONT),
    R + "attachedTemplate": Drop(Removed.REMOTE_TEMPLATE),
    R + "subDocument": Drop(Removed.EXTERNAL_LINK),
    R + "frame": Drop(Removed.EXTERNAL_LINK),
    R + "aFChunk": Drop(Removed.EMBEDDED_FILE),  # altChunk: embedded HTML/RTF/MHT imported on open
    R + "mailMergeSource": Drop(Removed.MAIL_MERGE),
    R + "mailMergeHeaderSource": Drop(Removed.MAIL_MERGE),
    R + "recipientData": Drop(Removed.MAIL_MERGE),
    MS06 + "wordVbaData": Drop(Removed.MACRO),
    MS06 + "keyMapCustomizations": Drop(Removed.MACRO),
    MS06 + "attachedToolbars": Drop(Removed.MACRO),
    # -- PresentationML
    R + "slide": Keep(_ct("presentationml.slide+xml"), PPTX),
    R + "slideLayout": Keep(_ct("presentationml.slideLayout+xml"), PPTX),
    R + "slideMaster": Keep(_ct("presentationml.slideMaster+xml"), PPTX),
    R + "notesSlide": Keep(_ct("presentationml.notesSlide+xml"), PPTX),
    R + "notesMaster": Keep(_ct("presentationml.notesMaster+xml"), PPTX),
    R + "handoutMaster": Keep(_ct("presentationml.handoutMaster+xml"), PPTX),
    R + "presProps": Keep(_ct("presentationml.presProps+xml"), PPTX),
    R + "viewProps": Keep(_ct("presentationml.viewProps+xml"), PPTX),
    R + "tableStyles": Keep(_ct("presentationml.tableStyles+xml"), PPTX),
    R + "commentAuthors": Keep(_ct("presentationml.commentAuthors+xml"), PPTX),
    "http://schemas.microsoft.com/office/2018/10/relationships/comments": Keep(
        frozenset({"application/vnd.ms-powerpoint.comments+xml"}), PPTX
    ),
    "http://schemas.microsoft.com/office/2018/10/relationships/authors": Keep(
        frozenset({"application/vnd.ms-powerpoint.authors+xml"}), PPTX
    ),
    "http://schemas.microsoft.com/office/2015/10/relationships/revisionInfo": Drop(Removed.AUX_PART),
    R + "tags": Drop(Removed.AUX_PART),
    R + "slideUpdateInfo": Drop(Removed.EXTERNAL_LINK),
    R + "vmlDrawing": Drop(Removed.AUX_PART),  # legacy rendering of OLE/ActiveX in slides
    R + "audio": Drop(Removed.MEDIA),
    R + "video": Drop(Removed.MEDIA),
    MS07 + "media": Drop(Removed.MEDIA),
    MS07 + "hdphoto": Drop(Removed.UNSUPPORTED_IMAGE),
    # -- SpreadsheetML (only reached in the package scan; openpyxl does the xlsx rebuild)
    R + "worksheet": Keep(_ct("spreadsheetml.worksheet+xml"), XLSX),
    R + "chartsheet": Keep(_ct("spreadsheetml.chartsheet+xml"), XLSX),
    R + "sharedStrings": Keep(_ct("spreadsheetml.sharedStrings+xml"), XLSX),
    R + "calcChain": Drop(Removed.AUX_PART),
    R + "drawing": Keep(_ct("drawing+xml"), XLSX),
    R + "table": Keep(_ct("spreadsheetml.table+xml"), XLSX),
    R + "pivotTable": Drop(Removed.AUX_PART),
    R + "pivotCacheDefinition": Drop(Removed.DATA_CONNECTION),
    R + "pivotCacheRecords": Drop(Removed.DATA_CONNECTION),
    R + "queryTable": Drop(Removed.DATA_CONNECTION),
    R + "connections": Drop(Removed.DATA_CONNECTION),
    R + "externalLink": Drop(Removed.EXTERNAL_LINK),
    R + "externalLinkPath": Drop(Removed.EXTERNAL_LINK),
    R + "dialogsheet": Drop(Removed.XLM_MACRO),
    MS06 + "xlMacrosheet": Drop(Removed.XLM_MACRO),
    MS06 + "xlIntlMacrosheet": Drop(Removed.XLM_MACRO),
    R + "printerSettings": Drop(Removed.AUX_PART),
    R + "volatileDependencies": Drop(Removed.DATA_CONNECTION),
    R + "sheetMetadata": Drop(Removed.AUX_PART),
    R + "usernames": Drop(Removed.AUX_PART),
    R + "revisionHeaders": Drop(Removed.AUX_PART),
    "http://schemas.microsoft.com/office/2017/10/relationships/person": Drop(Removed.AUX_PART),
    "http://schemas.microsoft.com/office/2017/10/relationships/threadedComment": Drop(Removed.AUX_PART),
    R + "ctrlProp": Drop(Removed.ACTIVEX),
    # -- active content, any application
    MS06 + "vbaProject": Drop(Removed.MACRO),
    MS06 + "vbaProjectSignature": Drop(Removed.MACRO),
    "http://schemas.microsoft.com/office/2014/relationships/vbaProjectSignatureAgile": Drop(Removed.MACRO),
    "http://schemas.microsoft.com/office/2020/07/relationships/vbaProjectSignatureV3": Drop(Removed.MACRO),
    R + "oleObject": Drop(Removed.OLE_OBJECT),
    R + "package": Drop(Removed.EMBEDDED_FILE),
    R + "control": Drop(Removed.ACTIVEX),
    MS06 + "activeXControlBinary": Drop(Removed.ACTIVEX),
    MS06 + "ui/extensibility": Drop(Removed.CUSTOM_UI),
    MS07 + "ui/extensibility": Drop(Removed.CUSTOM_UI),
    MS06 + "ui/userCustomization": Drop(Removed.CUSTOM_UI),
    MS11 + "webextension": Drop(Removed.WEB_EXTENSION),
    MS11 + "webextensiontaskpanes": Drop(Removed.WEB_EXTENSION),
}
# An external target of these types is dropped with a more precise label.
EXTERNAL_LABELS: dict[str, Removed] = {
    R + "attachedTemplate": Removed.REMOTE_TEMPLATE,
    R + "oleObject": Removed.OLE_OBJECT,
    R + "hyperlink": Removed.UNSAFE_URI,
}
