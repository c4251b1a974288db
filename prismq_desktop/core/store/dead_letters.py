"""Dead letters: runs whose retries ran out, kept until requeued or purged."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from prismq_desktop.core.models import Run, RunSpec, absolute_spec
from prismq_desktop.core.store.database import Database


@dataclass(frozen=True)
class DeadLetter:
    """A run whose retries ran out; it can be requeued (a fresh chain) or purged."""

    id: int
    run_id: int
    first_run_id: int
    name: str
    spec: RunSpec
    options: dict[str, Any]
    attempts: int
    reason: str | None
    created_at: float
    requeued_run_id: int | None


class DeadLetterTable(Database):
    """The dead_letters table (a part of RunRegistry)."""

    def add_dead_letter(self, run: Run, first_run_id: int, attempts: int, reason: str | None) -> int:
        spec = run.spec
        if run.cwd and not spec.where:  # the folder this run really ran in (its relative cwd and script were resolved against it)
            spec = absolute_spec(replace(spec, cwd=run.cwd) if spec.cwd else spec, run.cwd)
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO dead_letters (run_id, first_run_id, name, spec, options, attempts, reason, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                # requeued later, maybe from another folder: paths as this run resolved them
                (run.id, first_run_id, run.name, self.stored_spec(spec),
                 json.dumps(dict(run.options), sort_keys=True), attempts, reason, time.time()),
            )
        return int(cur.lastrowid or 0)

    def dead_letters(self, include_requeued: bool = False) -> list[DeadLetter]:
        where = "" if include_requeued else " WHERE requeued_run_id IS NULL"
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM dead_letters{where} ORDER BY id").fetchall()
        return [
            DeadLetter(r["id"], r["run_id"], r["first_run_id"], r["name"], RunSpec.from_dict(json.loads(r["spec"])),
                       json.loads(r["options"]), r["attempts"], r["reason"], r["created_at"], r["requeued_run_id"])
            for r in rows
        ]

    def dead_letter(self, dead_letter_id: int) -> DeadLetter | None:
        found = [d for d in self.dead_letters(include_requeued=True) if d.id == dead_letter_id]
        return found[0] if found else None

    def mark_requeued(self, dead_letter_id: int, run_id: int) -> None:
        with self._lock:
            self._db.execute("UPDATE dead_letters SET requeued_run_id=? WHERE id=?", (run_id, dead_letter_id))

    def purge_dead_letters(self, ids: Sequence[int] | None = None) -> int:
        with self._lock:
            if ids is None:
                secrets = self._secret_refs("SELECT spec FROM dead_letters")
                cur = self._db.execute("DELETE FROM dead_letters")
            else:
                where = f"WHERE id IN ({', '.join('?' * len(ids))})"
                secrets = self._secret_refs(f"SELECT spec FROM dead_letters {where}", tuple(ids))
                cur = self._db.execute(f"DELETE FROM dead_letters {where}", tuple(ids))
        self.release_secrets(secrets)
        return cur.rowcount
