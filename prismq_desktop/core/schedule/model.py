"""What a schedule is (a leaf module: events and views import it without the scheduler loop)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from prismq_desktop.core.models import RunSpec
from prismq_desktop.core.schedule.triggers import Trigger, trigger_from_dict


class OverlapPolicy(enum.StrEnum):
    ALLOW = "allow"
    FORBID = "forbid"
    REPLACE = "replace"
    QUEUE = "queue"


class CatchUp(enum.StrEnum):
    COALESCE = "coalesce"
    ALL = "all"
    SKIP = "skip"


class ScheduleError(ValueError):
    """A schedule that cannot be created or changed; the message is for a person."""


@dataclass(frozen=True)
class BrokenSchedule:
    """A stored schedule row that cannot be used (written by an older version, or edited by
    hand): it is shown with its reason and can be removed, but it never fires."""

    id: int
    name: str
    reason: str


@dataclass
class Schedule:
    id: int
    name: str
    spec: RunSpec
    trigger: Trigger
    enabled: bool = True
    overlap: OverlapPolicy = OverlapPolicy.FORBID
    misfire_grace: float = 60.0
    catchup: CatchUp = CatchUp.COALESCE
    catchup_limit: int = 10
    jitter: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)  # max_retries, priority, retry backoff
    last_fire: float | None = None
    next_fire: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    def describe(self) -> str:
        return self.trigger.describe()

    @staticmethod
    def from_row(row: dict[str, Any]) -> Schedule:
        """A schedule from its registry row; ValueError (TriggerError) for one that cannot be used."""
        try:
            return Schedule._from_row(row)
        except ValueError:
            raise
        except (KeyError, TypeError, AttributeError) as exc:
            raise ScheduleError(f"unreadable field {exc}") from None

    @staticmethod
    def _from_row(row: dict[str, Any]) -> Schedule:
        return Schedule(
            id=row["id"], name=row["name"], spec=RunSpec.from_dict(row["spec"]), trigger=trigger_from_dict(row["trigger"]),
            enabled=row["enabled"], overlap=OverlapPolicy(row["overlap"]), misfire_grace=row["misfire_grace"],
            catchup=CatchUp(row["catchup"]), catchup_limit=row["catchup_limit"], jitter=row["jitter"],
            options=row["options"], last_fire=row["last_fire"], next_fire=row["next_fire"],
            created_at=row["created_at"], updated_at=row["updated_at"],
        )
