"""One query builder for run history: the CLI's `history` and the window's History use the same one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

LIFECYCLE = ("queued", "running", "paused", "done")

#: History's sortable columns -> SQL ("status" sorts by how runs ended)
SORTABLE = {"id": "id", "name": "name", "pattern": "pattern", "trigger": "trigger", "status": "outcome",
            "started": "started_at", "created": "created_at", "duration": "(ended_at - started_at)",
            "exit_code": "exit_code", "peak_cpu": "peak_cpu", "peak_rss": "peak_rss"}


#: the ids of runs whose name, trigger, error or run key contains a phrase (schema.FTS_MIGRATION)
FTS_MATCH = "SELECT rowid FROM runs_fts WHERE runs_fts MATCH ?"

#: the runs not in the index yet (new or renamed since the last `RunTable.index_pending`) that contain the
#: text; CROSS JOIN keeps the (short) pending list the outer loop, never a scan of the runs
PENDING_LIKE = ("SELECT p.id FROM runs_fts_pending p CROSS JOIN runs r ON r.id = p.id WHERE r.name LIKE ? ESCAPE '\\' "
                "OR r.trigger LIKE ? ESCAPE '\\' OR r.error LIKE ? ESCAPE '\\' OR r.run_key LIKE ? ESCAPE '\\'")


def like_pattern(text: str) -> str:
    """`%text%` with LIKE's wildcards in `text` taken literally (ESCAPE '\\')."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fts_phrase(text: str) -> str:
    """`text` as one FTS5 phrase of the lowered index: every character literal ("" for a quote),
    folded like SQLite's lower() and LIKE (ASCII letters only)."""
    return '"' + text.translate(_ASCII_LOWER).replace('"', '""') + '"'


def _names(value: Iterable[str] | str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(str(v) for v in value)


@dataclass(frozen=True)
class RunQuery:
    """Which runs, in which order, which page.

    `states` mixes lifecycle statuses (queued, running, paused, done) and outcomes
    (succeeded, failed, ...); a run matches when it is in any of them. `text` looks in the
    name, the trigger, the error message and the caller-chosen run id.
    """

    states: tuple[str, ...] = ()
    text: str | None = None
    name: str | None = None
    schedule_id: int | None = None
    since: float | None = None
    until: float | None = None
    sort: str = "created"
    descending: bool = True
    limit: int = 100
    offset: int = 0

    @classmethod
    def of(cls, states: Iterable[str] | str | None = None, **fields: Any) -> RunQuery:
        return cls(states=_names(states), **fields)

    def indexed_text(self) -> bool:
        """Whether the trigram index can answer `text` (it has no trigram under 3 characters)."""
        return self.text is not None and len(self.text) >= 3

    def where(self, fts: bool = False) -> tuple[str, list[Any]]:
        """The WHERE clause; `fts`: answer `text` from the trigram index (schema.FTS_MIGRATION)
        when it can, the same rows as the LIKE scan it replaces."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.schedule_id is not None:
            clauses.append("schedule_id = ?")
            params.append(self.schedule_id)
        if self.name is not None:
            clauses.append("name = ?")
            params.append(self.name)
        if self.text and fts and self.indexed_text():
            # the index, and the few runs it does not hold yet (noted by the triggers) by LIKE
            clauses.append(f"(id IN ({FTS_MATCH}) OR id IN ({PENDING_LIKE}))")
            params += [fts_phrase(self.text), *[like_pattern(self.text)] * 4]
        elif self.text:
            clauses.append("(name LIKE ? ESCAPE '\\' OR trigger LIKE ? ESCAPE '\\' OR error LIKE ? ESCAPE '\\' "
                           "OR run_key LIKE ? ESCAPE '\\')")
            params += [like_pattern(self.text)] * 4
        lifecycle = [s for s in self.states if s in LIFECYCLE]
        outcomes = [s for s in self.states if s not in LIFECYCLE]
        parts = []
        for col, vals in (("status", lifecycle), ("outcome", outcomes)):
            if vals:
                # one value: "=" lets SQLite walk the (col, created_at) index in order
                parts.append(f"{col} = ?" if len(vals) == 1 else f"{col} IN ({', '.join('?' * len(vals))})")
                params += vals
        if parts:
            clauses.append(parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")")
        if self.since is not None:
            clauses.append("created_at >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("created_at < ?")
            params.append(self.until)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def order_by(self) -> str:
        col = SORTABLE.get(self.sort, "created_at")
        direction = "DESC" if self.descending else "ASC"
        return f" ORDER BY {col} {direction}, id {direction}"
