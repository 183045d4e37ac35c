"""Word and PowerPoint packages built by the tests: active content goes, text stays."""

from __future__ import annotations

import io
import zipfile

import msoffcrypto.format.ooxml
import pytest
from sanitizer_oracles import (
    content_types,
    drawing_text,
    msodde_links,
    oleobj_external_relationships,
    ooxml_external_targets,
    word_instructions,
    word_text,
    zip_names,
    zip_read,
)
from sanitizer_samples import (
    BILLION_LAUGHS,
    DOCM_MAIN,
    PPTX_MAIN,
    W_DOC_CLOSE,
    XXE,
    R,
    complex_field,
    content_types_xml,
    docx,
    para,
    png_with_metadata,
    pptx,
    rels_xml,
    shape_with_text,
    zip_bytes,
)

from sanitizer.core import rebuild_untrusted
from sanitizer.errors import Code, Refused
from sanitizer.limits import Limits
from sanitizer.ooxml import rebuild_docx, rebuild_pptx
from sanitizer.verify import verify

MS06 = "http://schemas.microsoft.com/office/2006/relationships/"


def removed_items(rebuilt) -> set[str]:  # type: ignore[no-untyped-def]
    return {k.value for k, n in rebuilt.removed.items() if n}


# ------------------------------------------------------------------ DDE and fields

DDE_FIELDS = {
    "ddeauto": complex_field('DDEAUTO c:\\\\windows\\\\system32\\\\cmd.exe "/k calc.exe"'),
    "lower-case": complex_field("ddeauto cmd.exe"),
    "split-across-runs": complex_field(" DD", "EAUT", 'O cmd "/c calc"'),
    "full-width": complex_field("ＤＤＥＡＵＴＯ cmd.exe"),
    "plain-dde": complex_field(" DDE Excel Sheet1 R1C1"),
    "fldSimple": '<w:p><w:fldSimple w:instr=" DDE cmd.exe &quot;/c calc&quot; "><w:r><w:t>RESULT</w:t></w:r></w:fldSimple></w:p>',
    "fldSimple-lower": '<w:p><w:fldSimple w:instr="dde cmd x"><w:r><w:t>RESULT</w:t></w:r></w:fldSimple></w:p>',
    "nested-quote": (
        '<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r>'
        '<w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText>QUOTE "DDE"</w:instrText></w:r>'
        '<w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>DDE</w:t></w:r>'
        '<w:r><w:fldChar w:fldCharType="end"/></w:r>'
        '<w:r><w:instrText xml:space="preserve"> cmd "/c calc"</w:instrText></w:r>'
        '<w:r><w:fldChar w:fldCharType="separate"/></w:r><w:r><w:t>RESULT</w:t></w:r>'
        '<w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>'
    ),
}


@pytest.mark.parametrize("variant", sorted(DDE_FIELDS))
def test_dde_fields_are_flattened_and_results_kept(variant: str, detector) -> None:  # type: ignore[no-untyped-def]
    source = docx(para("前文") + DDE_FIELDS[variant] + para("後文"))
    rebuilt = rebuild_docx(source, Limits())
    assert removed_items(rebuilt) & {"dde", "field_code"}
    instructions = " ".join(word_instructions(rebuilt.data)).upper()
    assert "DDE" not in instructions and "ＤＤＥ" not in instructions
    text = word_text(rebuilt.data)
    assert "前文" in text and "後文" in text and "RESULT" in text
    assert msodde_links(rebuilt.data, ".docx") == ""
    assert verify(rebuilt.data, "docx", Limits(), detector) == []


@pytest.mark.parametrize(
    ("instruction", "kept"),
    [
        (" PAGE ", True),
        (' TOC \\o "1-3" \\h ', True),
        (' HYPERLINK "https://www.city.example.lg.jp/" ', True),
        (' HYPERLINK \\l "bookmark1" ', True),
        (' HYPERLINK "file:///C:/Windows/calc.exe" ', False),
        (' INCLUDEPICTURE "http://example.invalid/track.png" \\d ', False),
        (' INCLUDETEXT "\\\\\\\\192.0.2.1\\\\share\\\\x.docx" ', False),
        (" MACROBUTTON Evil Click ", False),
        (" PRINT \\p page ", False),
        (" UNKNOWNFIELD x ", False),
    ],
)
def test_field_allow_list(instruction: str, kept: bool) -> None:
    source = docx(complex_field(instruction, result="shown"))
    rebuilt = rebuild_docx(source, Limits())
    assert (word_instructions(rebuilt.data) != []) is kept
    assert "shown" in word_text(rebuilt.data)


def test_unterminated_field_is_flattened() -> None:
    body = '<w:p><w:r><w:fldChar w:fldCharType="begin"/></w:r><w:r><w:instrText>DDEAUTO cmd</w:instrText></w:r></w:p>'
    rebuilt = rebuild_docx(docx(body + para("after")), Limits())
    assert word_instructions(rebuilt.data) == [] and "after" in word_text(rebuilt.data)


def test_edited_parts_keep_their_namespace_declarations() -> None:
    """mc:Ignorable lists prefixes; the edit must keep every declaration Word needs."""
    rebuilt = rebuild_docx(docx(DDE_FIELDS["ddeauto"]), Limits())
    document = zip_read(rebuilt.data, "word/document.xml").decode()
    assert 'mc:Ignorable="w14"' in document and "xmlns:w14=" in document and "<w:document " in document


# ------------------------------------------------------------------ parts and relationships


def test_remote_template_is_removed(detector) -> None:  # type: ignore[no-untyped-def]
    settings = (
        f'<w:settings xmlns:w="{"http://schemas.openxmlformats.org/wordprocessingml/2006/main"}" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<w:attachedTemplate r:id="rIdT"/><w:mailMerge><w:mainDocumentType w:val="formLetters"/>'
        '<w:connectString w:val="Provider=Microsoft.ACE.OLEDB.12.0"/><w:query w:val="SELECT * FROM x"/></w:mailMerge>'
        "</w:settings>"
    )
    source = docx(
        para("本文"), settings=settings,
        settings_rels=[("rIdT", R + "attachedTemplate", "https://example.invalid/t.dotm", True)],
    )  # fmt: skip
    assert oleobj_external_relationships(source, ".docx")
    rebuilt = rebuild_docx(source, Limits())
    assert removed_items(rebuilt) == {"remote_template", "mail_merge"}
    out_settings = zip_read(rebuilt.data, "word/settings.xml").decode()
    assert "attachedTemplate" not in out_settings and "mailMerge" not in out_settings
    assert oleobj_external_relationships(rebuilt.data, ".docx") == []
    assert verify(rebuilt.data, "docx", Limits(), detector) == []


def _ole_activex_docx() -> bytes:
    body = (
        para("before") + '<w:p><w:r><w:object><v:shape id="s1"><v:imagedata r:id="rIdImg"/></v:shape>'
        '<o:OLEObject Type="Embed" ProgID="Package" ShapeID="s1" r:id="rIdOle"/></w:object></w:r></w:p>'
        + '<w:p><w:r><w:object><w:control r:id="rIdAx" w:name="CommandButton1"/></w:object></w:r></w:p>'
        + para("after")
    )
    return docx(
        body,
        main_type=DOCM_MAIN,
        doc_rels=[
            ("rIdOle", R + "oleObject", "embeddings/oleObject1.bin", False),
            ("rIdImg", R + "image", "media/image1.emf", False),
            ("rIdAx", R + "control", "activeX/activeX1.xml", False),
            ("rIdVba", MS06 + "vbaProject", "vbaProject.bin", False),
        ],
        root_rels=[("rIdUi", "http://schemas.microsoft.com/office/2007/relationships/ui/extensibility", "customUI/customUI14.xml", False)],
        parts={
            "word/embeddings/oleObject1.bin": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504,
            "word/media/image1.emf": b"\x01\x00\x00\x00" + b"\x00" * 100,
            "word/activeX/activeX1.xml": '<ax:ocx xmlns:ax="http://schemas.microsoft.com/office/2006/activeX" ax:classid="{D7053240-CE69-11CD-A777-00DD01143C57}" r:id="rId1" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"/>',
            "word/activeX/_rels/activeX1.xml.rels": rels_xml([("rId1", MS06 + "activeXControlBinary", "activeX1.bin", False)]),
            "word/activeX/activeX1.bin": b"\x00" * 64,
            "word/vbaProject.bin": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504,
            "customUI/customUI14.xml": '<customUI xmlns="http://schemas.microsoft.com/office/2009/07/customui" onLoad="Evil"/>',
        },
        overrides={"word/activeX/activeX1.xml": "application/vnd.ms-office.activeX+xml"},
        defaults={
            "bin": "application/vnd.openxmlformats-officedocument.oleObject", "emf": "image/x-emf",
        },
    )  # fmt: skip


def test_ole_activex_vba_and_customui_are_removed(detector) -> None:  # type: ignore[no-untyped-def]
    rebuilt = rebuild_docx(_ole_activex_docx(), Limits())
    assert removed_items(rebuilt) == {"ole_object", "unsupported_image", "activex", "macro", "custom_ui"}
    names = zip_names(rebuilt.data)
    assert not [
        n for n in names if "embeddings" in n or "activeX" in n or "vba" in n.lower() or "customUI" in n
    ]
    document = zip_read(rebuilt.data, "word/document.xml").decode()
    assert "w:object" not in document and "OLEObject" not in document and "w:control" not in document
    assert word_text(rebuilt.data) == "beforeafter"
    types = content_types(rebuilt.data)
    assert "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml" in types
    assert not any("macroEnabled" in t for t in types)
    assert verify(rebuilt.data, "docx", Limits(), detector) == []


def test_external_hyperlinks_keep_web_links_and_lose_file_links() -> None:
    body = (
        '<w:p><w:hyperlink r:id="rIdWeb"><w:r><w:t>web</w:t></w:r></w:hyperlink>'
        '<w:hyperlink r:id="rIdFile"><w:r><w:t>file</w:t></w:r></w:hyperlink>'
        '<w:hyperlink r:id="rIdMsdt"><w:r><w:t>msdt</w:t></w:r></w:hyperlink></w:p>'
    )
    source = docx(
        body,
        doc_rels=[
            ("rIdWeb", R + "hyperlink", "https://www.example.lg.jp/", True),
            ("rIdFile", R + "hyperlink", "file://192.0.2.1/share/x.exe", True),
            ("rIdMsdt", R + "hyperlink", "ms-msdt:/id PCWDiagnostic", True),
        ],
    )
    rebuilt = rebuild_docx(source, Limits())
    assert rebuilt.removed["unsafe_uri"] == 2
    assert ooxml_external_targets(rebuilt.data) == [("hyperlink", "https://www.example.lg.jp/")]
    assert word_text(rebuilt.data) == "webfilemsdt"


def test_alt_chunk_and_linked_ole_are_removed() -> None:
    body = (
        para("x")
        + '<w:altChunk r:id="rIdChunk"/>'
        + (
            '<w:p><w:r><w:object><o:OLEObject Type="Link" ProgID="Word.Document.8" r:id="rIdLink" UpdateMode="Always"/>'
            "</w:object></w:r></w:p>"
        )
    )
    source = docx(
        body,
        doc_rels=[
            ("rIdChunk", R + "aFChunk", "afchunk.mht", False),
            ("rIdLink", R + "oleObject", "http://example.invalid/x.doc", True),
        ],
        parts={"word/afchunk.mht": "MIME-Version: 1.0\r\n\r\n<script>x</script>"},
        defaults={"mht": "message/rfc822"},
    )
    rebuilt = rebuild_docx(source, Limits())
    assert removed_items(rebuilt) == {"embedded_file", "ole_object"}
    document = zip_read(rebuilt.data, "word/document.xml").decode()
    assert "altChunk" not in document and "OLEObject" not in document
    assert oleobj_external_relationships(rebuilt.data, ".docx") == []


def test_images_are_reencoded_without_metadata() -> None:
    body = (
        '<w:p><w:r><w:drawing><a:graphic xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main">'
        '<a:graphicData><a:blip r:embed="rIdPng"/></a:graphicData></a:graphic></w:drawing></w:r></w:p>'
    )
    source = docx(
        body, doc_rels=[("rIdPng", R + "image", "media/image1.png", False)],
        parts={"word/media/image1.png": png_with_metadata()}, defaults={"png": "image/png"},
    )  # fmt: skip
    rebuilt = rebuild_docx(source, Limits())
    assert removed_items(rebuilt) == {"metadata"}
    image = zip_read(rebuilt.data, "word/media/image1.png")
    assert b"secret author note" not in image and b"PhoneMaker" not in image


def test_unknown_relationship_type_is_refused() -> None:
    source = docx(para("x"), doc_rels=[("rIdX", "http://example.invalid/relationships/evil", "evil.bin", False)],
                  parts={"word/evil.bin": b"MZ"})  # fmt: skip
    with pytest.raises(Refused) as refused:
        rebuild_docx(source, Limits())
    assert refused.value.code is Code.OOXML_UNKNOWN_PART


def test_known_relationship_with_unexpected_content_type_is_refused() -> None:
    source = docx(para("x"), doc_rels=[("rIdS", R + "styles", "styles.exe", False)],
                  parts={"word/styles.exe": b"MZ"}, defaults={"exe": "application/x-msdownload"})  # fmt: skip
    with pytest.raises(Refused) as refused:
        rebuild_docx(source, Limits())
    assert refused.value.code is Code.OOXML_UNKNOWN_PART


def test_unreferenced_members_are_not_copied() -> None:
    source = docx(para("x"), parts={"word/vbaProject.bin": b"\x00" * 10, "stray/payload.exe": b"MZ"})
    rebuilt = rebuild_docx(source, Limits())
    assert "stray/payload.exe" not in zip_names(rebuilt.data) and "word/vbaProject.bin" not in zip_names(
        rebuilt.data
    )
    assert rebuilt.removed["macro"] == 1


# ------------------------------------------------------------------ zip and XML abuse


@pytest.mark.parametrize(
    "name", ["../evil.xml", "/abs.xml", "word\\..\\evil.xml", "C:/evil.xml", "word//x.xml", "a/./b.xml"]
)
def test_unsafe_member_names_are_refused(name: str) -> None:
    source = docx(para("x"), parts={name: "<x/>"})
    with pytest.raises(Refused) as refused:
        rebuild_docx(source, Limits())
    assert refused.value.code is Code.ZIP_UNSAFE_NAME


def test_case_insensitive_duplicate_members_are_refused() -> None:
    source = docx(para("x"), parts={"WORD/document.xml": "<x/>"})
    with pytest.raises(Refused) as refused:
        rebuild_docx(source, Limits())
    assert refused.value.code is Code.ZIP_UNSAFE_NAME


def test_relationship_target_outside_the_package_is_refused() -> None:
    source = docx(para("x"), doc_rels=[("rIdS", R + "styles", "../../../etc/passwd", False)])
    with pytest.raises(Refused) as refused:
        rebuild_docx(source, Limits())
    assert refused.value.code is Code.ZIP_UNSAFE_NAME


def test_compression_ratio_bomb_is_refused() -> None:
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(docx(para("x"))), "r") as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        with dst.open("word/media/zeros.png", "w") as fh:
            for _ in range(8):
                fh.write(b"\x00" * (1 << 20))
    with pytest.raises(Refused) as refused:
        rebuild_docx(out.getvalue(), Limits())
    assert refused.value.code is Code.ZIP_BOMB


def test_declared_total_size_limit() -> None:
    source = docx(para("x"), parts={f"word/pad{i}.xml": "<p/>" * 2000 for i in range(5)})
    with pytest.raises(Refused) as refused:
        rebuild_docx(source, Limits(max_zip_total_bytes=20_000))
    assert refused.value.code is Code.ZIP_BOMB


def test_lying_declared_size_is_refused() -> None:
    """Central directory says 10 bytes; the stream inflates to much more."""
    source = bytearray(zip_bytes({"[Content_Types].xml": "<a/>", "word/document.xml": "A" * 100_000}))
    with zipfile.ZipFile(io.BytesIO(bytes(source))) as archive:
        info = archive.getinfo("word/document.xml")
    # Patch the uncompressed size in both the local header (offset 22) and the central directory entry (24).
    local = info.header_offset
    source[local + 22 : local + 26] = (10).to_bytes(4, "little")
    entry = source.find(b"PK\x01\x02", source.find(b"word/document.xml") - 46)
    source[entry + 24 : entry + 28] = (10).to_bytes(4, "little")
    with pytest.raises(Refused) as refused:
        rebuild_docx(bytes(source), Limits())
    assert refused.value.code in (Code.ZIP_BOMB, Code.OOXML_MALFORMED)


def test_entry_count_limit() -> None:
    source = docx(para("x"), parts={f"word/n{i}.xml": "<x/>" for i in range(30)})
    with pytest.raises(Refused) as refused:
        rebuild_docx(source, Limits(max_zip_entries=20))
    assert refused.value.code is Code.ZIP_TOO_MANY_ENTRIES


def test_encrypted_zip_member_is_refused() -> None:
    source = bytearray(docx(para("x")))
    # Set the "encrypted" general-purpose flag on every central-directory entry.
    start = 0
    while (entry := source.find(b"PK\x01\x02", start)) != -1:
        source[entry + 8] |= 0x01
        start = entry + 4
    with pytest.raises(Refused) as refused:
        rebuild_docx(bytes(source), Limits())
    assert refused.value.code is Code.OFFICE_ENCRYPTED


def test_password_protected_office_file_is_refused(detector) -> None:  # type: ignore[no-untyped-def]
    plain = io.BytesIO(docx(para("秘密")))
    encrypted = io.BytesIO()
    msoffcrypto.format.ooxml.OOXMLFile(plain).encrypt("password", encrypted)
    outcome = rebuild_untrusted(encrypted.getvalue(), "secret.docx", Limits(), detector)
    assert outcome.code is Code.OFFICE_ENCRYPTED


@pytest.mark.parametrize("prolog", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
@pytest.mark.parametrize("part", ["word/document.xml", "[Content_Types].xml", "word/_rels/document.xml.rels"])
def test_dtds_are_refused_everywhere(prolog: str, part: str) -> None:
    source = docx(para("x"), doc_rels=[("rIdW", R + "webSettings", "webSettings.xml", False)])
    with zipfile.ZipFile(io.BytesIO(source)) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    body = members[part].decode()
    members[part] = (prolog + body.split("?>", 1)[1]).encode()
    with pytest.raises(Refused) as refused:
        rebuild_docx(zip_bytes(members), Limits())
    assert refused.value.code is Code.XML_FORBIDDEN_CONSTRUCT


def test_missing_content_types_is_malformed() -> None:
    source = zip_bytes({"_rels/.rels": rels_xml([]), "word/document.xml": "<x/>"})
    with pytest.raises(Refused) as refused:
        rebuild_docx(source, Limits())
    assert refused.value.code is Code.OOXML_MALFORMED


def test_main_part_of_another_application_is_a_mismatch() -> None:
    source = docx(
        para("x"), main_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
    )
    with pytest.raises(Refused) as refused:
        rebuild_docx(source, Limits())
    assert refused.value.code is Code.TYPE_MISMATCH


# ------------------------------------------------------------------ PowerPoint


def test_pptx_actions_ole_media_and_macros(detector) -> None:  # type: ignore[no-untyped-def]
    program = '<a:hlinkClick r:id="" action="ppaction://program"/>'
    macro = '<a:hlinkClick r:id="" action="ppaction://macro?name=Evil"/>'
    jump = '<a:hlinkClick r:id="" action="ppaction://hlinkshowjump?jump=nextslide"/>'
    file_link = '<a:hlinkClick r:id="rIdFile"/>'
    ole = (
        '<p:graphicFrame><p:nvGraphicFramePr><p:cNvPr id="9" name="ole"/><p:cNvGraphicFramePr/><p:nvPr/></p:nvGraphicFramePr>'
        '<p:xfrm/><a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/presentationml/2006/ole">'
        '<p:oleObj r:id="rIdOle" progId="Package"/></a:graphicData></a:graphic></p:graphicFrame>'
    )
    body = (
        shape_with_text("run", program)
        + shape_with_text("macro", macro)
        + shape_with_text("next", jump)
        + shape_with_text("file", file_link)
        + ole
    )
    source = pptx(
        body,
        main_type="application/vnd.ms-powerpoint.presentation.macroEnabled.main+xml",
        slide_rels=[
            ("rIdFile", R + "hyperlink", "file:///C:/Windows/System32/calc.exe", True),
            ("rIdOle", R + "oleObject", "../embeddings/oleObject1.bin", False),
            ("rIdVid", R + "video", "../media/media1.mp4", False),
        ],
        pres_rels=[("rIdVba", MS06 + "vbaProject", "vbaProject.bin", False)],
        parts={"ppt/embeddings/oleObject1.bin": b"\xd0\xcf\x11\xe0", "ppt/media/media1.mp4": b"\x00" * 32,
               "ppt/vbaProject.bin": b"\x00" * 32},
        defaults={"bin": "application/vnd.openxmlformats-officedocument.oleObject", "mp4": "video/mp4"},
    )  # fmt: skip
    rebuilt = rebuild_pptx(source, Limits())
    assert removed_items(rebuilt) == {"ppt_action", "unsafe_uri", "ole_object", "media", "macro"}
    assert rebuilt.removed["ppt_action"] == 2
    slide = zip_read(rebuilt.data, "ppt/slides/slide1.xml").decode()
    assert "ppaction://program" not in slide and "ppaction://macro" not in slide and "oleObj" not in slide
    assert "hlinkshowjump" in slide
    assert drawing_text(rebuilt.data, "ppt/slides/") == ["run", "macro", "next", "file"]
    assert PPTX_MAIN in content_types(rebuilt.data)
    assert not [n for n in zip_names(rebuilt.data) if "media" in n or "embeddings" in n or "vba" in n.lower()]
    assert verify(rebuilt.data, "pptx", Limits(), detector) == []


def test_content_types_are_regenerated() -> None:
    source = docx(para("x"))
    with zipfile.ZipFile(io.BytesIO(source)) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    members["[Content_Types].xml"] = content_types_xml(
        {"word/document.xml": "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
         "word/ghost.xml": "application/vnd.ms-office.vbaProject"}
    ).encode()  # fmt: skip
    rebuilt = rebuild_docx(zip_bytes(members), Limits())
    assert "application/vnd.ms-office.vbaProject" not in content_types(rebuilt.data)


def test_docx_ends_with_close_tag() -> None:
    assert W_DOC_CLOSE.endswith("</w:document>")


def test_actions_in_a_mangled_namespace_are_still_removed(detector) -> None:  # type: ignore[no-untyped-def]
    """Found by the fuzz test: the drawingml namespace URI lost its first letter."""
    rebuilt = rebuild_pptx(_mangle_drawing_namespace(), Limits())
    assert rebuilt.removed["ppt_action"] == 1
    assert verify(rebuilt.data, "pptx", Limits(), detector) == []


def _mangle_drawing_namespace() -> bytes:
    source = pptx(shape_with_text("x", '<a:hlinkClick r:id="" action="ppaction://program"/>'))
    with zipfile.ZipFile(io.BytesIO(source)) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    members["ppt/slides/slide1.xml"] = members["ppt/slides/slide1.xml"].replace(
        b'xmlns:a="http://schemas.openxmlformats.org/drawingml',
        b'xmlns:a="ttp://schemas.openxmlformats.org/drawingml',
    )
    return zip_bytes(members)
