"""Upload into a room (multipart, streamed to disk) and download with an access check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from shared.limits import MAX_MESSAGE_CHARS

from ..errors import AppError
from ..services.messages import CLIENT_MSG_ID, NewMessage
from .common import actor, current, kernel, ok
from .validation import is_ascii_int, path_int

routes = web.RouteTableDef()
_TEXT_FIELDS = {"body", "client_msg_id", "thread_root_id", "important"}


async def _chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    try:
        while chunk := await part.read_chunk(256 * 1024):
            yield chunk
    except (ValueError, HttpProcessingError) as exc:   # how aiohttp's multipart parser reports a bad body
        raise AppError("invalid_request", field="file", reason="bad_multipart") from exc


@routes.post("/api/rooms/{room_id}/files")
async def upload(request: web.Request) -> web.Response:
    """multipart/form-data: optional text fields (body, client_msg_id, thread_root_id, important) first,
    then one part named ``file``."""
    if request.content_type != "multipart/form-data":
        raise AppError("unsupported_media_type", expected="multipart/form-data")
    room_id = path_int(request, "room_id")
    try:
        reader = await request.multipart()
    except ValueError as exc:   # no boundary, or one longer than RFC 2046 allows
        raise AppError("invalid_request", field="(body)", reason="bad_multipart") from exc
    fields: dict[str, str] = {}
    while True:
        try:
            part = await reader.next()
        except (ValueError, HttpProcessingError) as exc:   # e.g. control characters in a part's headers
            raise AppError("invalid_request", field="(body)", reason="bad_multipart") from exc
        if part is None:
            raise AppError("invalid_request", field="file", reason="missing_field")
        if not isinstance(part, BodyPartReader):
            raise AppError("invalid_request", field="(body)", reason="nested_multipart")
        if part.name == "file":
            break
        if part.name not in _TEXT_FIELDS or part.name in fields:
            raise AppError("invalid_request", field=str(part.name)[:40], reason="unknown_field")
        raw = await part.read(decode=False)
        if len(raw) > MAX_MESSAGE_CHARS * 4:
            raise AppError("message_too_long")
        try:
            fields[part.name] = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AppError("invalid_utf8") from exc
    thread = fields.get("thread_root_id", "")
    if thread and not is_ascii_int(thread):
        raise AppError("invalid_request", field="thread_root_id", reason="bad_format")
    client_id = fields.get("client_msg_id") or None
    if client_id is not None and not CLIENT_MSG_ID.fullmatch(client_id):   # checked before the file is read
        raise AppError("invalid_request", field="client_msg_id", reason="pattern")
    new = NewMessage(body=fields.get("body", ""), thread_root_id=int(thread) if thread else None,
                     important=fields.get("important", "") in ("1", "true"), client_msg_id=client_id)
    data = await kernel(request).files.upload(actor(request), current(request).staff, room_id,
                                              part.filename or "file", _chunks(part), new)
    return ok(data, status=201)


@routes.get("/api/files/{attachment_id}")
async def download(request: web.Request) -> web.StreamResponse:
    dl = await kernel(request).files.download(actor(request), path_int(request, "attachment_id"))
    inline = dl.inline_ok and request.query.get("inline") == "1"
    ascii_name = dl.filename.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    disposition = "inline" if inline else "attachment"
    response = web.FileResponse(dl.path, headers={
        "Content-Type": dl.mime if inline else "application/octet-stream",
        "Content-Disposition": f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(dl.filename)}",
        # Even if a browser renders it, the file gets no script and no origin.
        "Content-Security-Policy": "default-src 'none'; img-src 'self'; sandbox",
    })
    return response
