"""The sanitizer's verdict (issue 3, item 9): only a trusted sanitizer key can vouch for rebuilt bytes; every
field, the report and the bytes are bound to the signature; the file envelopes fit the envelope limit."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from sanitizer.errors import Code
from sanitizer.kinds import KINDS
from sanitizer.report import Removed, Report
from shared import envelope as env
from shared.limits import MAX_ENVELOPE_BYTES
from shared.signing import KeyRing, Signer, TrustedKey, canonical_json
from shared.timeutil import utcnow
from shared.verdict import (
    CHUNK_BYTES,
    MAX_REPORT_BYTES,
    OUTPUT_MIME,
    PURPOSE,
    Verdict,
    VerdictError,
    check_bytes,
    check_report,
    check_verdict,
    decode_report,
    decode_token,
    encode_report,
    encode_token,
    report_digest,
    report_for_crossing,
    sign_verdict,
    split_chunks,
)

SANITIZER = Signer.generate()
TRUSTED = KeyRing([TrustedKey(SANITIZER.public_key)])
OUT = b"%PDF-1.7 rebuilt " + bytes(range(256)) * 500


def report(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "status": "rebuilt", "code": "ok", "message": {"ja": "再構成しました。", "en": "Rebuilt."}, "detail": "",
        "input": {"name": "申請書.pdf", "sha256": "a" * 64, "bytes": 900, "detected_type": "pdf"},
        "output": {"name": "申請書.pdf", "type": "pdf", "extension": "pdf", "sha256": hashlib.sha256(OUT).hexdigest(),
                   "bytes": len(OUT)},
        "removed": [{"item": "javascript", "ja": "JavaScript", "en": "JavaScript", "count": 2}],
        "summary": {"ja": "JavaScript ×2", "en": "JavaScript ×2"}, "isolation": {"network": "netns"}, "elapsed_ms": 12}
    base.update(changes)
    return base


def verdict(signer: Signer = SANITIZER, rep: dict[str, Any] | None = None) -> Verdict:
    return sign_verdict(signer, input_sha256="a" * 64, input_bytes=900, output=OUT, output_type="pdf",
                        output_name="申請書.pdf", report=rep or report())


def test_a_trusted_signature_binds_every_field() -> None:
    v = verdict()
    check_verdict(v, TRUSTED)
    check_bytes(v, OUT)
    check_report(report(), v)
    assert Verdict.from_json(v.to_json()) == v
    for name, value in (("job_id", "0" * 32), ("signed_at", "2026-01-01T00:00:00.000Z"), ("input_sha256", "b" * 64),
                        ("input_bytes", 901), ("output_sha256", "c" * 64), ("output_bytes", 1),
                        ("output_type", "png"), ("output_name", "other.pdf"), ("report_sha256", "d" * 64)):
        with pytest.raises(VerdictError) as bad:
            check_verdict(replace(v, **{name: value}), TRUSTED)
        assert bad.value.code == "verdict_bad_signature", name


def test_only_the_sanitizer_key_counts_and_purposes_do_not_mix() -> None:
    relay = Signer.generate()       # a compromised relay has its own link key, not the sanitizer's
    with pytest.raises(VerdictError) as unknown:
        check_verdict(verdict(relay), TRUSTED)
    assert unknown.value.code == "verdict_unknown_key"
    # The same key signing the same content for another purpose (say, an envelope) is no verdict.
    v = verdict()
    other_purpose = base64.b64encode(SANITIZER.private_key.sign(b"kakehashi/queue/v1\x00" + b"{}")).decode()
    with pytest.raises(VerdictError):
        check_verdict(replace(v, signature=other_purpose), TRUSTED)
    assert PURPOSE == "kakehashi/sanitizer/v1" != env.PURPOSE
    retired = KeyRing([TrustedKey(SANITIZER.public_key, not_after=utcnow() - timedelta(seconds=1))])
    with pytest.raises(VerdictError) as expired:
        check_verdict(v, retired)
    assert expired.value.code == "verdict_expired_key"


def test_bytes_and_report_must_be_the_signed_ones() -> None:
    v = verdict()
    for data, code in ((OUT + b"x", "size_mismatch"), (OUT[:-1] + b"?", "sha256_mismatch")):
        with pytest.raises(VerdictError) as bad:
            check_bytes(v, data)
        assert bad.value.code == code
    with pytest.raises(VerdictError) as tampered:
        check_report(report(removed=[]), v)       # "nothing was removed" is not what was signed
    assert tampered.value.code == "report_digest_mismatch"
    hostile = [report(extra=1), report(detail="\u202egpj.exe"), report(status="refused"),
               report(input={"name": "x", "sha256": "e" * 64, "bytes": 900, "detected_type": "pdf"}),
               report(removed=[{"item": "<script>", "ja": "x", "en": "x", "count": 1}]),
               report(elapsed_ms=True)]
    for rep in hostile:
        signed = verdict(rep=rep)                 # even when the sanitizer signed it, the shape is checked
        with pytest.raises(VerdictError):
            check_report(rep, signed)


def test_tokens_and_reports_decode_strictly() -> None:
    assert decode_token(encode_token(b"\x00\xff" * 10), 20) == b"\x00\xff" * 10
    for bad in ("a", "ab=", "ab+c", "abc_" * 100, "QQ" + "=", "QR"):    # padding, alphabet, length, non-canonical
        with pytest.raises(VerdictError):
            decode_token(bad, 10)
    assert decode_report(encode_report(report())) == report()
    with pytest.raises(VerdictError):
        decode_report(encode_token(b'{"a":1,"a":2}'))
    with pytest.raises(VerdictError):
        decode_report(encode_token(b'{"a":1.5}'))
    with pytest.raises(VerdictError):
        encode_report(report(detail="x" * MAX_REPORT_BYTES))


def test_the_vocabulary_matches_the_sanitizer() -> None:
    assert OUTPUT_MIME == {kind: k.mime for kind, k in KINDS.items()}


def test_file_envelopes_fit_the_envelope_limit() -> None:
    signer = Signer.generate()
    biggest = env.FileChunk(job_id="f" * 32, index=2**40, data=split_chunks(b"\xff" * CHUNK_BYTES)[0])
    raw = env.seal(biggest, seq=2**52, signer=signer)
    assert len(raw) < MAX_ENVELOPE_BYTES
    # The largest report the sanitizer can write: every removal class, huge counts, 255-byte names.
    name = "名" * 85
    worst = Report(code=Code.OK, input_name=name, input_sha256="a" * 64, input_bytes=2**40, detected_type="pdf",
                   output_type="pdf", output_extension="pdf", output_name=name, output_sha256="b" * 64,
                   output_bytes=2**40, removed={item: 9_999_999 for item in Removed},
                   isolation={"process": "p" * 80, "network": "userns+netns", "user": "65534"}, elapsed_ms=1e9)
    rep = report_for_crossing(worst.to_dict())
    assert len(canonical_json(rep)) < MAX_REPORT_BYTES
    v = verdict(rep=rep)
    header = env.FileSanitized(
        origin_id="g:999999999999999:" + "x" * 40, room_id=2**52, author="g:999999999999999",
        posted_at="2026-04-01T00:00:00.000Z", thread_root_id=2**52, job_id=v.job_id, signed_at=v.signed_at,
        input_sha256=v.input_sha256, input_bytes=v.input_bytes, output_sha256=v.output_sha256,
        output_bytes=v.output_bytes, output_type="pdf", output_name=name, report=encode_report(rep),
        report_sha256=report_digest(rep), sanitizer_key_id=v.key_id, sanitizer_sig=v.signature_token, chunks=2**40)
    assert len(env.seal(header, seq=2**52, signer=signer)) < MAX_ENVELOPE_BYTES
    assert Verdict.signature_from_token(v.signature_token) == v.signature
    assert split_chunks(b"a" * (CHUNK_BYTES * 2 + 1))[2] == encode_token(b"a")
