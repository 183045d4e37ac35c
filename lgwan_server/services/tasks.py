"""Tasks from messages (誰が・何を・いつまでに): assignees, due date, status, "my tasks", reminders.

A task made from a room message is visible to that room's members; a personal task to its
creator and assignees. Assignees must be able to see the room the task came from.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from shared.textsafe import clean_line
from shared.timeutil import now_iso

from ..errors import AppError
from ..hub import Hub
from ..storage import messages as message_store
from ..storage import tasks as store
from ..storage.database import Database
from ..storage.tasks import Task
from .actor import Actor
from .events import EventService
from .org import today_jst
from .rooms import RoomService

STATUSES = ("open", "doing", "done")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def task_json(task: Task, assignees: list[int]) -> dict[str, Any]:
    return {"id": task.id, "room_id": task.room_id, "message_id": task.message_id, "title": task.title,
            "due_date": task.due_date, "status": task.status, "created_by": task.created_by,
            "created_at": task.created_at, "updated_at": task.updated_at, "assignees": assignees}


class TaskService:
    def __init__(self, db: Database, hub: Hub, rooms: RoomService, events: EventService) -> None:
        self.db = db
        self.hub = hub
        self.rooms = rooms
        self.events = events

    @staticmethod
    def _check_date(value: str | None) -> None:
        if value is not None:
            if not _DATE.match(value):
                raise AppError("invalid_request", field="due_date")
            try:
                date.fromisoformat(value)
            except ValueError as exc:
                raise AppError("invalid_request", field="due_date") from exc

    async def create(self, actor: Actor, *, title: str, due_date: str | None, assignee_ids: list[int],
                     message_id: int | None) -> dict[str, Any]:
        assert actor.staff_id is not None and actor.org_id is not None
        self._check_date(due_date)
        room_id = None
        if message_id is not None:
            msg = await message_store.get_message(self.db, message_id)
            if msg is None:
                raise AppError("message_not_found")
            try:
                await self.rooms.access_room(actor.staff_id, msg.room_id)
            except AppError as exc:
                raise AppError("message_not_found") from exc
            room_id = msg.room_id
            outsiders = [s for s in assignee_ids if not self.hub.is_member(room_id, s)]
            if outsiders:
                raise AppError("mention_not_member", staff_id=outsiders[0])
        name = clean_line(title)[:200]
        if not name:
            raise AppError("invalid_request", field="title")
        now = now_iso()
        async with self.db.transaction("task_create") as conn:
            task_id = await store.insert_task(conn, org_id=actor.org_id, room_id=room_id, message_id=message_id,
                                              title=name, due_date=due_date, created_by=actor.staff_id, now=now)
            await store.set_assignees(conn, task_id, assignee_ids)
            task = await store.get_task(conn, task_id)
            assert task is not None
            data = task_json(task, sorted(set(assignee_ids)))
            if room_id is not None:
                await self.events.emit(conn, "task.new", data, room_id=room_id)
            else:
                await self.events.emit_to_staff(conn, "task.new", data, sorted(set(assignee_ids) | {actor.staff_id}))
        return data

    async def _visible(self, actor: Actor, task_id: int) -> Task:
        assert actor.staff_id is not None
        task = await store.get_task(self.db, task_id)
        if task is None:
            raise AppError("not_found")
        if task.created_by == actor.staff_id or actor.staff_id in await store.assignees(self.db, task_id):
            return task
        if task.room_id is not None and self.hub.is_member(task.room_id, actor.staff_id):
            return task
        raise AppError("not_found")

    async def get(self, actor: Actor, task_id: int) -> dict[str, Any]:
        task = await self._visible(actor, task_id)
        return task_json(task, await store.assignees(self.db, task_id))

    async def update(self, actor: Actor, task_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        task = await self._visible(actor, task_id)
        if "status" in changes and changes["status"] not in STATUSES:
            raise AppError("invalid_request", field="status")
        self._check_date(changes.get("due_date"))
        async with self.db.transaction("task_update") as conn:
            await store.update_task(conn, task_id, title=clean_line(changes["title"])[:200] if "title" in changes else None,
                                    due_date=changes.get("due_date"),
                                    clear_due="due_date" in changes and changes["due_date"] is None,
                                    status=changes.get("status"), now=now_iso())
            if "assignee_ids" in changes:
                await store.set_assignees(conn, task_id, changes["assignee_ids"])
            updated = await store.get_task(conn, task_id)
            assert updated is not None
            data = task_json(updated, await store.assignees(conn, task_id))
            if task.room_id is not None:
                await self.events.emit(conn, "task.update", data, room_id=task.room_id)
            else:
                await self.events.emit_to_staff(conn, "task.update", data, sorted(set(data["assignees"]) |
                                                                                  {task.created_by}))
        return data

    async def mine(self, actor: Actor, include_done: bool) -> list[dict[str, Any]]:
        assert actor.staff_id is not None
        return [task_json(t, await store.assignees(self.db, t.id))
                for t in await store.tasks_of(self.db, actor.staff_id, include_done)]

    async def in_room(self, actor: Actor, room_id: int) -> list[dict[str, Any]]:
        assert actor.staff_id is not None
        await self.rooms.access_room(actor.staff_id, room_id)
        return [task_json(t, await store.assignees(self.db, t.id)) for t in await store.room_tasks(self.db, room_id)]

    async def send_reminders(self) -> int:
        """Remind assignees of tasks due today or tomorrow, once a day (called by the maintenance loop)."""
        today = date.fromisoformat(today_jst())
        sent = 0
        async with self.db.transaction("task_reminders") as conn:
            for task in await store.due_for_reminder(conn, today.isoformat(), (today + timedelta(days=1)).isoformat()):
                people = await store.assignees(conn, task.id) or [task.created_by]
                await self.events.emit_to_staff(conn, "task.reminder", task_json(task, people), people)
                await store.mark_reminded(conn, task.id, today.isoformat())
                sent += 1
        return sent
