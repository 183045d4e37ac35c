"""Thin HTTP handlers, one route table per resource, collected here."""

from __future__ import annotations

from aiohttp import web

from . import (
    admin,
    admin_rooms,
    auth,
    broadcasts,
    directory,
    files,
    guests,
    health,
    messages,
    notices,
    pages,
    records,
    rooms,
    safety,
    sanitized,
    tasks,
    usage,
    ws,
)


def setup_routes(app: web.Application) -> None:
    for module in (health, auth, directory, rooms, messages, files, sanitized, ws, admin, admin_rooms, usage, records, safety,
                   broadcasts, notices, tasks, guests, pages):
        app.add_routes(module.routes)
