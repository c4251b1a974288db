"""Schedules and their exactly-once fire claims."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from prismq_desktop.core.store.database import Database
from prismq_desktop.core.store.schema import RegistryError


class ScheduleTable(Database):
    """The schedules and schedule_fires tables (a part of RunRegistry)."""

    def _schedule_row(self, row: sqlite3.Row) -> dict[str, Any]:
        data = dict(row)
        data["spec"] = json.loads(data["spec"])
        data["trigger"] = json.loads(data["trigger"])
        data["options"] = json.loads(data["options"]) if data["options"] else {}
        data["enabled"] = bool(data["enabled"])
        return data

    def add_schedule(self, values: dict[str, Any]) -> int:
        row = self._schedule_values(values)
        row["created_at"] = row["updated_at"] = time.time()
        with self._lock:
            try:
                cur = self._db.execute(
                    f"INSERT INTO schedules ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
                )
            except sqlite3.IntegrityError:
                raise RegistryError(f"a schedule named {values['name']!r} already exists") from None
        return int(cur.lastrowid or 0)

    def _schedule_values(self, values: dict[str, Any]) -> dict[str, Any]:
        row = dict(values)
        row.pop("id", None)
        if isinstance(row.get("spec"), dict):
            row["spec"] = self.vault.protect_dict(row["spec"])  # secret env values as vault references
        for key in ("spec", "trigger", "options"):
            if key in row and not isinstance(row[key], str):
                row[key] = json.dumps(row[key], sort_keys=True)
        if "enabled" in row:
            row["enabled"] = int(bool(row["enabled"]))
        return row

    def update_schedule(self, schedule_id: int, values: dict[str, Any]) -> None:
        row = self._schedule_values(values)
        row["updated_at"] = time.time()
        with self._lock:
            try:
                cur = self._db.execute(
                    f"UPDATE schedules SET {', '.join(f'{k}=?' for k in row)} WHERE id=?", (*row.values(), schedule_id)
                )
            except sqlite3.IntegrityError:
                raise RegistryError(f"a schedule named {values.get('name')!r} already exists") from None
        if cur.rowcount != 1:
            raise RegistryError(f"no schedule #{schedule_id}")

    def get_schedule(self, key: int | str) -> dict[str, Any] | None:
        col = "id" if isinstance(key, int) else "name"
        with self._lock:
            row = self._db.execute(f"SELECT * FROM schedules WHERE {col}=?", (key,)).fetchone()
        return self._schedule_row(row) if row else None

    def list_schedules(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM schedules ORDER BY name").fetchall()
        return [self._schedule_row(r) for r in rows]

    def delete_schedule(self, schedule_id: int) -> bool:
        """Delete a schedule; its runs (and their schedule_id) stay in history."""
        with self._lock:
            secrets = self._secret_refs("SELECT spec FROM schedules WHERE id=?", (schedule_id,))
            cur = self._db.execute("DELETE FROM schedules WHERE id=?", (schedule_id,))
        self.release_secrets(secrets)
        return cur.rowcount == 1

    def claim_fires(self, schedule_id: int, expected_next: float | None, dues: Sequence[float],
                    next_fire: float | None, last_fire: float | None) -> bool:
        """Atomically claim due times of a schedule and move its next fire on.

        Exactly once across processes: the claim only succeeds if the schedule's stored
        next fire is still what this process saw, and every (schedule, due) pair is a
        primary key, so a second process trying the same due time fails and fires nothing.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT next_fire FROM schedules WHERE id=?", (schedule_id,)).fetchone()
                if row is None or row[0] != expected_next:
                    self._db.execute("ROLLBACK")
                    return False
                me, now = self._owner[0], time.time()
                self._db.executemany(
                    "INSERT INTO schedule_fires (schedule_id, due, claimed_by, claimed_at) VALUES (?, ?, ?, ?)",
                    [(schedule_id, due, me, now) for due in dues],
                )
                self._db.execute(
                    "UPDATE schedules SET next_fire=?, last_fire=COALESCE(?, last_fire), updated_at=? WHERE id=?",
                    (next_fire, last_fire, now, schedule_id),
                )
                self._db.execute("COMMIT")
                return True
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                return False
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def fire_claims(self, schedule_id: int) -> list[tuple[float, int]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT due, claimed_by FROM schedule_fires WHERE schedule_id=? ORDER BY due", (schedule_id,)
            ).fetchall()
        return [(r[0], r[1]) for r in rows]
