"""Thin handlers of the guest web port (one route table per module) and of the queue port."""

from __future__ import annotations

from aiohttp import web

from . import api, pages, safety, uploads, ws


def setup_routes(app: web.Application) -> None:
    for module in (api, safety, uploads, ws, pages):
        app.add_routes(module.routes)
