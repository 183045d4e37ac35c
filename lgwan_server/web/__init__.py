"""Thin HTTP handlers, one route table per resource, collected here."""

from __future__ import annotations

from aiohttp import web

from . import admin, auth, directory, files, health, messages, rooms, ws


def setup_routes(app: web.Application) -> None:
    for module in (health, auth, directory, rooms, messages, files, ws, admin):
        app.add_routes(module.routes)
