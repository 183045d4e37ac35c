"""Small helpers every handler uses: the caller, the kernel, JSON responses."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..appkeys import client_ip_key, current_auth_key, kernel_key
from ..kernel import Kernel
from ..services.actor import Actor
from ..services.auth import Authenticated


def kernel(request: web.Request) -> Kernel:
    return request.app[kernel_key]


def current(request: web.Request) -> Authenticated:
    return request[current_auth_key]


def actor(request: web.Request) -> Actor:
    return request[current_auth_key].actor(request[client_ip_key])


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False))
