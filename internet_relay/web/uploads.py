"""File uploads from guests and staff phones (issue 3, item 9): multipart in, sanitizer, only rebuilt bytes queued.

``POST /api/rooms/{room_id}/files`` takes ``multipart/form-data`` with the text field ``client_msg_id``
(and optionally ``thread_root_id``) first, then one part named ``file``. Session, CSRF token and Origin
are checked by the auth middleware like every other unsafe ``/api/`` request; room access and the rate
limit are checked before a byte of the file is read; the file is read into memory up to
``[sanitizer] max_upload_bytes`` (never to disk) and handed to the sanitizer service.
``GET /api/uploads`` tells the page whether to offer the upload button.
"""

from __future__ import annotations

import json

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ..errors import AppError
from ..services.uploads import UploadRefused
from .common import current, ip, ok, path_int, relay

routes = web.RouteTableDef()
_FIELDS = {"client_msg_id", "thread_root_id"}
_READ = 256 * 1024


def _refused(exc: UploadRefused) -> web.Response:
    return web.json_response(exc.to_json(), status=exc.status, dumps=lambda v: json.dumps(v, ensure_ascii=False))


@routes.get("/api/uploads")
async def settings(request: web.Request) -> web.Response:
    uploads = relay(request).uploads
    return ok({"enabled": uploads.enabled, "max_bytes": uploads.cfg.max_upload_bytes})


@routes.post("/api/rooms/{room_id}/files")
async def upload(request: web.Request) -> web.Response:
    uploads = relay(request).uploads
    auth = current(request)
    if request.content_type != "multipart/form-data":
        raise AppError("unsupported_media_type")
    room_id = path_int(request, "room_id")
    try:
        if not uploads.enabled:
            raise UploadRefused("uploads_off")
        try:
            reader = await request.multipart()
        except ValueError as exc:
            raise AppError("invalid_request", field="(body)", reason="bad_multipart") from exc
        fields: dict[str, str] = {}
        while True:
            try:
                part = await reader.next()
            except (ValueError, HttpProcessingError) as exc:
                raise AppError("invalid_request", field="(body)", reason="bad_multipart") from exc
            if part is None:
                raise UploadRefused("file_missing")
            if not isinstance(part, BodyPartReader):
                raise AppError("invalid_request", field="(body)", reason="nested_multipart")
            if part.name == "file":
                break
            if part.name not in _FIELDS or part.name in fields:
                raise AppError("invalid_request", field=str(part.name)[:40], reason="unknown_field")
            raw = await part.read(decode=False)
            if len(raw) > 64:
                raise AppError("invalid_request", field=str(part.name), reason="too_long")
            fields[part.name] = raw.decode("utf-8", errors="replace")
        thread = fields.get("thread_root_id", "")
        if thread and not (thread.isascii() and thread.isdigit() and len(thread) <= 15):
            raise AppError("invalid_request", field="thread_root_id")
        admitted = await uploads.admit(auth.account, ip(request), room_id, fields.get("client_msg_id", ""),
                                       int(thread) if thread else None)
        if isinstance(admitted, dict):          # a retry of an upload already taken
            return ok(admitted, status=202)
        limit = uploads.cfg.max_upload_bytes
        data = bytearray()
        try:
            while chunk := await part.read_chunk(_READ):
                if len(data) + len(chunk) > limit:
                    raise await uploads.too_large(admitted, ip(request))
                data += chunk
        except (ValueError, HttpProcessingError) as exc:
            raise AppError("invalid_request", field="file", reason="bad_multipart") from exc
        result = await uploads.upload(admitted, ip(request), part.filename or "", bytes(data))
        data.clear()
        return ok(result, status=202)
    except UploadRefused as exc:
        return _refused(exc)
