"""Helpers every handler uses: the kernel, the caller, strict JSON bodies, responses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ..appkeys import client_ip_key, current_auth_key, relay_key
from ..errors import AppError
from ..kernel import Relay
from ..services.accounts import Authenticated

Schema = Mapping[str, tuple[type | tuple[type, ...], int]]   # field -> (types, max length for strings)


def relay(request: web.Request) -> Relay:
    return request.app[relay_key]


def current(request: web.Request) -> Authenticated:
    return request[current_auth_key]


def ip(request: web.Request) -> str:
    return request[client_ip_key]


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False))


async def read_json(request: web.Request, schema: Schema, required: set[str]) -> dict[str, Any]:
    """A JSON object with exactly the known fields, of the right types and lengths (unknown fields refused)."""
    if request.content_type != "application/json":
        raise AppError("unsupported_media_type")
    try:
        value = json.loads((await request.read()).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise AppError("invalid_json") from exc
    if not isinstance(value, dict):
        raise AppError("invalid_request", field="(body)")
    if unknown := set(value) - set(schema):
        raise AppError("invalid_request", field=sorted(unknown)[0], reason="unknown_field")
    if missing := required - set(value):
        raise AppError("invalid_request", field=sorted(missing)[0], reason="missing_field")
    for name, item in value.items():
        kinds, limit = schema[name]
        if isinstance(item, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
            raise AppError("invalid_request", field=name, reason="wrong_type")
        if not isinstance(item, kinds):
            raise AppError("invalid_request", field=name, reason="wrong_type")
        if isinstance(item, str) and len(item) > limit:
            raise AppError("invalid_request", field=name, reason="too_long")
        if isinstance(item, int) and not isinstance(item, bool) and not 0 <= item < 2**53:
            raise AppError("invalid_request", field=name, reason="out_of_range")
    return value


def path_int(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 15:
        raise AppError("not_found")
    return int(raw)


def query_int(request: web.Request, name: str, default: int | None = None, maximum: int = 2**53) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) > maximum:
        raise AppError("invalid_request", field=name)
    return int(raw)
