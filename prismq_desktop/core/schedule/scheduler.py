"""The periodic scheduler (pattern 5): persisted schedules fired through the orchestrator.

Built on our own trigger loop rather than APScheduler 3.x: the loop is ~one screen of
asyncio, it shares the orchestrator's queue, limit and registry (so a fired run is an
ordinary run with retries, history and cancel), and exactly-once across processes comes
from the registry itself (see RunRegistry.claim_fires). APScheduler 4 is pre-release.

* Overlap policy per schedule (Kubernetes concurrencyPolicy / Windows Task Scheduler):
  ``forbid`` (default; the fire is recorded as a ``skipped`` run), ``allow``, ``replace``
  (cancel the running one, start the new one), ``queue`` (start when the running one ends).
* Misfires: a fire later than ``misfire_grace`` seconds (the app was closed, the machine
  slept) is a miss. ``catchup`` then decides: ``coalesce`` (default: run once now), ``all``
  (run every missed fire, at most ``catchup_limit``), ``skip`` (run none). With ``coalesce``
  the one catch-up run is the one record ("catch-up: 110 missed fires coalesced"); with
  ``all``/``skip`` the fires not run are recorded as ``missed`` runs (the first 100 one by
  one, then one summary).
* No drift: the next fire always comes from the trigger's grid, never from "now".
* Jitter: each fire is delayed by a random 0..``jitter`` seconds; the grid stays put.
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import contextlib
import enum
import functools
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prismq_desktop.core.events import Event, Notice, RunChanged, ScheduleChanged
from prismq_desktop.core.models import Outcome, OutcomeKind, Run, RunSpec, RunStatus, absolute_spec
from prismq_desktop.core.patterns import TaskPattern
from prismq_desktop.core.process.launch import LaunchError, check_durations, check_environment
from prismq_desktop.core.schedule.model import BrokenSchedule, CatchUp, OverlapPolicy, Schedule, ScheduleError
from prismq_desktop.core.schedule.ports import SchedulerHost
from prismq_desktop.core.schedule.triggers import (
    CronTrigger,
    IntervalTrigger,
    OneShotTrigger,
    Trigger,
    TriggerError,
    check_interval,
    check_time,
    local_text,
    validate_trigger,
)
from prismq_desktop.core.store.passing import PASSING, RETRY_FIRST, next_delay
from prismq_desktop.core.store.query import RunQuery
from prismq_desktop.core.store.registry import RegistryError
from prismq_desktop.core.store.schema import RegistryUnusable

log = logging.getLogger(__name__)

MISSED_RECORDED_ONE_BY_ONE = 100
MISSED_ENUMERATION_LIMIT = 100_000
RELOAD_SECONDS = 2.0  # schedules edited by another process (the CLI) are picked up this fast
#: The loop turns at least every RELOAD_SECONDS; no turn for this long (or a fire this late) means it is stuck.
STUCK_AFTER = 15.0


@dataclass(frozen=True)
class SchedulerHealth:
    """What /health/scheduler reports: is the trigger loop turning and firing on time?"""

    status: str  # ok, paused, stopped, stuck
    running: bool
    last_tick: float | None  # unix time (the scheduler's clock) of the loop's last turn
    seconds_since_tick: float | None
    next_fire: float | None
    lag: float  # how late the most overdue enabled fire is (0 when none is)
    schedules_enabled: int
    reason: str = ""

    @property
    def healthy(self) -> bool:
        return self.status in ("ok", "paused")


def make_trigger(
    *, interval_seconds: float | None = None, cron: str | None = None, at: float | None = None,
    start: float | None = None, end: float | None = None, timezone: str = "UTC", now: float | None = None,
) -> Trigger:
    """The trigger a person asked for, validated (`triggers.validate_trigger`): an interval
    between 1 s and 366 days, a one-shot time still to come; TriggerError (one line) otherwise."""
    given = [x is not None for x in (interval_seconds, cron, at)]
    if sum(given) != 1:
        raise TriggerError("give exactly one of an interval, a cron expression or a one-shot time")
    current = time.time() if now is None else now
    trigger: Trigger
    if interval_seconds is not None:
        seconds = check_interval(interval_seconds)
        first = start if start is not None else current + seconds
        trigger = IntervalTrigger(seconds, first, end, timezone)
    elif cron is not None:
        trigger = CronTrigger(cron, timezone)
    else:
        assert at is not None
        trigger = OneShotTrigger(at, timezone)
    return validate_trigger(trigger, current)


def _usable(s: Schedule) -> Schedule:
    """`s`, if it can be fired and shown; TriggerError for a row an older version let through
    (an interval outside the bounds, a next fire that is no date)."""
    if isinstance(s.trigger, IntervalTrigger):
        check_interval(s.trigger.seconds)
    for label, ts in (("next fire", s.next_fire), ("last fire", s.last_fire)):
        if ts is not None:
            check_time(label, ts)
    return s


class FireAction(enum.StrEnum):
    STARTED = "started"
    SKIPPED = "skipped"  # overlap forbid: recorded as a skipped run
    QUEUED = "queued"  # overlap queue: starts when the running one ends
    REPLACED = "replaced"  # overlap replace: the running one was cancelled, a new one started


@dataclass(frozen=True)
class FireResult:
    """What one fire did, and the sentence that says so (for a view's banner or the CLI)."""

    schedule_id: int
    action: FireAction
    message: str
    run_id: int | None = None  # the run started (None when skipped or queued)
    blocking_run: int | None = None  # the run still going that made the fire skip, queue or replace
    record_id: int | None = None  # the skipped fire's record in history

    @property
    def started(self) -> bool:
        return self.run_id is not None


class Scheduler:
    """Fires persisted schedules through its host (a TaskOrchestrator) while started.

    It uses the host only through `SchedulerHost` (schedule/ports.py). `clock` gives the unix
    time trigger grids are read against (tests pass a fake one); `rng` draws the jitter.
    """

    def __init__(self, orchestrator: SchedulerHost, *, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None, fire_claim: Callable[[str, float], bool] | None = None) -> None:
        self.orch = orchestrator
        #: With a broker: ``fire_claim(schedule name, due)`` is true for one scheduler per fire slot
        #: across machines (core/remote/locks.py); the local claim still comes first.
        self.fire_claim = fire_claim
        self.registry = orchestrator.registry
        self.bus = orchestrator.bus
        self.clock = clock
        self.rng = rng or random.Random()
        self._schedules: dict[int, Schedule] = {}
        self._broken: dict[int, BrokenSchedule] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._jitter: dict[int, tuple[float, float]] = {}  # schedule id -> (due, delayed fire time)
        self._queued: dict[int, builtins.list[str]] = {}  # schedule id -> labels of fires waiting their turn
        self._active: dict[int, set[int]] = {}  # schedule id -> run ids started here and not finished
        self._unsubscribe: Callable[[], None] | None = None
        self.paused = False
        self._last_reload = 0.0
        self._lost_claims: dict[int, float] = {}  # a due time whose claim failed: wait for a reload to move on
        # what claimed fires still have to write (their run, a skip or miss record), in order: a
        # locked registry keeps them here, retried with backoff; a fire is neither lost nor doubled
        self._unwritten: collections.deque[tuple[int, Callable[[Schedule], object]]] = collections.deque()
        self._held_until = 0.0  # monotonic time before which no write is tried again
        self._last_turn: tuple[float, float] | None = None  # (clock, monotonic) of the loop's last turn
        self._hold_delay = RETRY_FIRST

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the trigger loop on the running event loop (catch-up happens on its first turn)."""
        if self.running:
            return
        self._wake = asyncio.Event()
        self._unsubscribe = self.bus.subscribe_sync(self._on_event)
        self.reload()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="prismq-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def pause_all(self) -> None:
        """Hold every schedule (fires falling due meanwhile are handled as misfires on resume)."""
        self.paused = True
        self._poke()

    def resume_all(self) -> None:
        self.paused = False
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------------ CRUD
    def reload(self) -> None:
        schedules: dict[int, Schedule] = {}
        broken: dict[int, BrokenSchedule] = {}
        for row in self.registry.list_schedules():
            try:
                schedules[row["id"]] = _usable(Schedule.from_row(row))
            except ValueError as exc:  # TriggerError and ScheduleError are ValueErrors
                broken[row["id"]] = BrokenSchedule(row["id"], str(row.get("name")), str(exc))
        if broken.keys() - self._broken.keys():
            log.info("schedules that cannot be used (they never fire): %s",
                        "; ".join(f"#{b.id} {b.name!r}: {b.reason}" for b in broken.values()))
        self._schedules, self._broken = schedules, broken
        self._last_reload = time.monotonic()

    def _reload_and_announce(self) -> None:
        """The periodic reload: schedules another process added, edited, fired or removed are
        announced as `ScheduleChanged` ("changed elsewhere" / "removed") so views follow them."""
        before = {sid: _version(s) for sid, s in self._schedules.items()}
        self.reload()
        for sid, s in self._schedules.items():
            if before.get(sid) != _version(s):
                self.bus.publish(ScheduleChanged(sid, s, "changed elsewhere"))
        for sid in before.keys() - self._schedules.keys():
            self._drop_state(sid)
            self.bus.publish(ScheduleChanged(sid, None, "removed"))

    def all(self) -> builtins.list[Schedule]:
        self.reload()
        return sorted(self._schedules.values(), key=lambda s: s.name)

    def broken(self) -> builtins.list[BrokenSchedule]:
        """Stored rows that cannot be used (as of the last reload): shown, removable, never fired."""
        return sorted(self._broken.values(), key=lambda b: b.name)

    def get(self, key: int | str) -> Schedule:
        row = self.registry.get_schedule(key)
        if row is None:
            raise ScheduleError(f"no schedule {key!r}")
        try:
            return _usable(Schedule.from_row(row))
        except ValueError as exc:
            what = f"schedule #{row['id']} {row.get('name')!r}"
            raise ScheduleError(f"{what} is broken ({exc}); remove it and add it again") from None

    def add(
        self,
        name: str,
        spec: RunSpec,
        trigger: Trigger,
        *,
        enabled: bool = True,
        overlap: OverlapPolicy | str = OverlapPolicy.FORBID,
        misfire_grace: float = 60.0,
        catchup: CatchUp | str = CatchUp.COALESCE,
        catchup_limit: int = 10,
        jitter: float = 0.0,
        **options: Any,
    ) -> Schedule:
        name = name.strip()
        if not name:
            raise ScheduleError("a schedule needs a name")
        now = self.clock()
        values = self._validated(spec, trigger, overlap, misfire_grace, catchup, catchup_limit, jitter, options,
                                 check_trigger_at=now)
        values.update(name=name, enabled=enabled, next_fire=trigger.next_after(now))
        try:
            sid = self.registry.add_schedule(values)
        except (*PASSING, RegistryUnusable):
            raise  # locked, full, unusable: the registry's own one line (nothing was written)
        except RegistryError as exc:  # a name already taken
            raise ScheduleError(str(exc)) from None
        return self._changed(sid, "added")

    def _validated(self, spec: RunSpec, trigger: Trigger, overlap: OverlapPolicy | str, misfire_grace: float,
                   catchup: CatchUp | str,
                   catchup_limit: int, jitter: float, options: dict[str, Any],
                   check_trigger_at: float | None = None) -> dict[str, Any]:
        """The row to save, or ScheduleError/TriggerError (one line) and nothing is saved.

        `check_trigger_at` (the clock's now) also validates the trigger against the bounds of
        `triggers.validate_trigger` (interval 1 s .. 366 days, a one-shot still to come)."""
        try:
            overlap = OverlapPolicy(overlap)
            catchup = CatchUp(catchup)
        except ValueError as exc:
            raise ScheduleError(str(exc)) from None
        if check_trigger_at is not None:
            validate_trigger(trigger, check_trigger_at)
        numbers = (misfire_grace, jitter)
        if not all(isinstance(x, (int, float)) and math.isfinite(x) and x >= 0 for x in numbers) or catchup_limit < 1:
            raise ScheduleError("misfire grace and jitter must be finite and >= 0 and the catch-up limit >= 1")
        try:
            check_durations(spec)
            check_environment(spec.env)
        except LaunchError as exc:
            raise ScheduleError(str(exc)) from None
        allowed = {"max_retries", "retry_on", "backoff_base", "backoff_factor", "backoff_cap", "priority"}
        unknown = set(options) - allowed
        if unknown:
            raise ScheduleError(f"unknown schedule option(s): {', '.join(sorted(unknown))}")
        spec = absolute_spec(spec)  # it fires later, from whatever folder the scheduler was started in
        return {"spec": spec.to_dict(), "trigger": trigger.to_dict(), "overlap": overlap.value,
                "misfire_grace": misfire_grace, "catchup": catchup.value, "catchup_limit": catchup_limit,
                "jitter": jitter, "options": options}

    def update(self, key: int | str, **changes: Any) -> Schedule:
        """Edit a schedule; its next fire is recomputed from the (new) trigger."""
        current = self.get(key)
        name = changes.pop("name", current.name)
        enabled = changes.pop("enabled", current.enabled)
        merged = {key: changes.pop(key, getattr(current, key))
                  for key in ("spec", "trigger", "overlap", "misfire_grace", "catchup", "catchup_limit", "jitter")}
        options = dict(current.options)
        options.update(changes)
        now = self.clock()
        new_trigger = merged["trigger"] != current.trigger  # an unchanged one (a fired one-shot) may stay
        values = self._validated(merged["spec"], merged["trigger"], merged["overlap"], merged["misfire_grace"],
                                 merged["catchup"], merged["catchup_limit"], merged["jitter"], options,
                                 check_trigger_at=now if new_trigger else None)
        values.update(name=name, enabled=enabled, next_fire=merged["trigger"].next_after(now))
        try:
            self.registry.update_schedule(current.id, values)
        except (*PASSING, RegistryUnusable):
            raise  # locked, full, unusable: the registry's own one line (nothing was written)
        except RegistryError as exc:  # a name already taken, a schedule removed meanwhile
            raise ScheduleError(str(exc)) from None
        self._jitter.pop(current.id, None)
        return self._changed(current.id, "edited")

    def enable(self, key: int | str) -> Schedule:
        """Enabling starts from now: fires that fell while it was disabled are not missed, just skipped."""
        return self.update(key, enabled=True)

    def disable(self, key: int | str) -> Schedule:
        s = self.get(key)
        self.registry.update_schedule(s.id, {"enabled": False})
        return self._changed(s.id, "disabled")

    def remove(self, key: int | str) -> str:
        """Delete the schedule (a broken one too) and return its name; the runs it fired stay in history."""
        row = self.registry.get_schedule(key)
        if row is None:
            raise ScheduleError(f"no schedule {key!r}")
        sid = int(row["id"])
        self.registry.delete_schedule(sid)
        self._schedules.pop(sid, None)
        self._broken.pop(sid, None)
        self._drop_state(sid)
        self.bus.publish(ScheduleChanged(sid, None, "removed"))
        self._poke()
        return str(row["name"])

    def _drop_state(self, sid: int) -> None:
        """Forget what was kept for a schedule that is gone (its runs go on as ordinary runs)."""
        for table in (self._jitter, self._queued, self._active, self._lost_claims):
            table.pop(sid, None)
        self._unwritten = collections.deque(item for item in self._unwritten if item[0] != sid)

    def _changed(self, sid: int, what: str) -> Schedule:
        s = self.get(sid)
        self._schedules[sid] = s
        self.bus.publish(ScheduleChanged(sid, s, what))
        self._poke()
        return s

    def history(self, key: int | str, limit: int = 100) -> builtins.list[Run]:
        """This schedule's runs, newest first: fired, skipped and missed ones."""
        return list(self.registry.query(RunQuery(schedule_id=self.get(key).id, limit=limit)))

    # ------------------------------------------------------------------ the loop
    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            try:
                await self._turn()
            except Exception:  # noqa: BLE001 - one bad schedule must not stop the others
                log.exception("scheduler turn failed")
                await asyncio.sleep(1.0)
            self._wake.clear()
            delay = self._sleep_time()
            # not wait_for(): on 3.11 it can swallow our cancellation when the wake-up raced it
            waiter = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({waiter}, timeout=delay)
            finally:
                waiter.cancel()

    def _fire_time(self, s: Schedule) -> float | None:
        """When to act on `s`'s next due time: the due time plus this fire's jitter."""
        if s.next_fire is None or self._lost_claims.get(s.id) == s.next_fire:
            return None
        if s.jitter <= 0:
            return s.next_fire
        due, at = self._jitter.get(s.id, (None, None))
        if due != s.next_fire or at is None:
            at = s.next_fire + self.rng.uniform(0, s.jitter)
            self._jitter[s.id] = (s.next_fire, at)
        return at

    def _sleep_time(self) -> float:
        held = self._held_until - time.monotonic()
        if held > 0:  # the registry refused a write: nothing is tried before the backoff is over
            return float(min(held, RELOAD_SECONDS))
        if self._unwritten:
            return 0.0
        now = self.clock()
        upcoming = [t for s in self._schedules.values() if s.enabled and (t := self._fire_time(s)) is not None]
        nearest = min(upcoming, default=now + RELOAD_SECONDS) - now
        return float(max(0.0, min(nearest, RELOAD_SECONDS)))

    async def _turn(self) -> None:
        self._last_turn = (self.clock(), time.monotonic())
        if time.monotonic() - self._last_reload >= RELOAD_SECONDS:
            self._reload_and_announce()
        if time.monotonic() < self._held_until or not self._write_claimed():
            return
        if self.paused:
            return
        now = self.clock()
        for s in list(self._schedules.values()):
            at = self._fire_time(s)
            if s.enabled and at is not None and at <= now:
                try:
                    self._fire_due(s, now)
                except PASSING as exc:  # the claim itself was refused: nothing was claimed, due again next try
                    self._hold(f"schedule {s.name!r}: the fire due {local_text(s.next_fire or now, s.trigger.timezone)} "
                               "waits", exc)
                    return
                if self._held_until > time.monotonic():
                    return

    def health(self, monotonic: Callable[[], float] = time.monotonic) -> SchedulerHealth:
        """Is the loop alive, turning and firing on time? (`monotonic` is injectable for tests.)"""
        now = self.clock()
        enabled = [s for s in self._schedules.values() if s.enabled and s.next_fire is not None]
        nxt = min((s.next_fire for s in enabled if s.next_fire is not None), default=None)
        lag = max(0.0, now - nxt) if nxt is not None else 0.0
        since = monotonic() - self._last_turn[1] if self._last_turn else None
        tick = self._last_turn[0] if self._last_turn else None
        status, reason = "ok", ""
        if not self.running:
            status = "stopped"
            reason = "the scheduler loop is not running" if self._task is None else "the scheduler loop has died"
        elif since is not None and since > STUCK_AFTER:
            status, reason = "stuck", f"no turn of the scheduler loop for {since:.0f} s"
        elif self.paused:
            status = "paused"
        elif lag > STUCK_AFTER and time.monotonic() >= self._held_until:
            status, reason = "stuck", f"a fire is {lag:.0f} s overdue"
        elif lag > STUCK_AFTER:
            status, reason = "stuck", f"fires held for {lag:.0f} s: the registry refuses writes"
        return SchedulerHealth(status, self.running, tick, since, nxt, lag, len(enabled), reason)

    def _hold(self, what: str, exc: Exception) -> None:
        """The registry refused a write (locked past its busy timeout, disk full): try again after a backoff."""
        if self._hold_delay == RETRY_FIRST:
            log.warning("%s: %s; retried", what, exc)
        self._held_until = time.monotonic() + self._hold_delay
        self._hold_delay = next_delay(self._hold_delay)

    def _taken(self) -> None:
        """A write went through: the next refusal starts its backoff afresh."""
        if self._hold_delay != RETRY_FIRST:
            log.info("the registry takes writes again; waiting fires go on")
            self._hold_delay = RETRY_FIRST

    def _after_claim(self, sid: int, action: Callable[[Schedule], object]) -> None:
        self._unwritten.append((sid, action))

    def _write_claimed(self) -> bool:
        """Do what claimed fires still have to write, in order; False when the registry refused
        one (it stays first, retried after a backoff). A fire's run is created (and stored
        before it starts) only here, after its claim is stored."""
        while self._unwritten:
            sid, action = self._unwritten[0]
            s = self._schedules.get(sid)
            if s is not None:
                try:
                    action(s)
                except PASSING as exc:  # refused before anything was created: the same action again later
                    self._hold(f"schedule {s.name!r}: a claimed fire waits to be recorded", exc)
                    return False
                self._taken()
            self._unwritten.popleft()
        return True

    def _fire_due(self, s: Schedule, now: float) -> None:
        due = s.next_fire
        assert due is not None
        if now - due <= s.misfire_grace:
            nxt = s.trigger.next_after(due)
            if not self.registry.claim_fires(s.id, due, [due], nxt, due):
                self._lost_claim(s, due)  # another process fired it (or the schedule changed)
                return
            self._taken()
            if self._claimed_everywhere(s, due):
                self._after_claim(s.id, functools.partial(self._start_or_skip, label="schedule", due=due))
        else:
            self._catch_up(s, now)
        self._changed(s.id, "fired")
        self._write_claimed()

    def _claimed_everywhere(self, s: Schedule, due: float) -> bool:
        """The cross-machine claim (when a broker is configured): False when another machine's
        scheduler fired this slot, or the broker cannot say (never a double fire)."""
        if self.fire_claim is None:
            return True
        try:
            return self.fire_claim(s.name, due)
        except Exception as exc:  # noqa: BLE001 - the broker is away: skip rather than risk a second fire
            log.error("schedule %r: fire at %s not claimed on the broker (%s); not fired", s.name, due, exc)
            return False

    def _lost_claim(self, s: Schedule, due: float) -> None:
        self._reload_and_announce()
        fresh = self._schedules.get(s.id)
        if fresh is not None and fresh.next_fire == due:
            self._lost_claims[s.id] = due  # stale or foreign claim on this very due time: do not spin on it

    def _catch_up(self, s: Schedule, now: float) -> None:
        """Fires that fell while nobody was scheduling: run per policy, record every miss."""
        assert s.next_fire is not None
        missed: builtins.list[float] = []
        t: float | None = s.next_fire
        while t is not None and t <= now and len(missed) < MISSED_ENUMERATION_LIMIT:
            missed.append(t)
            t = s.trigger.next_after(t)
        more = 0
        if t is not None and t <= now:  # absurdly many (a 1 s interval over days): count the rest
            more = -1
        nxt = s.trigger.next_after(now)
        if not self.registry.claim_fires(s.id, s.next_fire, missed, nxt, missed[-1]):
            self._lost_claim(s, s.next_fire)
            return
        self._taken()
        if s.catchup is CatchUp.ALL:
            to_run, to_record = missed[: s.catchup_limit], missed[s.catchup_limit :]
        elif s.catchup is CatchUp.COALESCE:
            to_run, to_record = missed[-1:], []  # ONE record: the catch-up run names how many it stands for
        else:
            to_run, to_record = [], missed
        self._record_missed(s, to_record, more)
        for i, due in enumerate(to_run):
            label = f"catch-up for {local_text(due, s.trigger.timezone)}"
            if s.catchup is CatchUp.COALESCE and (len(missed) > 1 or more):
                count = f"{len(missed)}{'+' if more else ''}"
                label = (f"catch-up: {count} missed fires coalesced ({local_text(missed[0], s.trigger.timezone)} "
                         f"to {local_text(missed[-1], s.trigger.timezone)})")
            if i and s.overlap is not OverlapPolicy.ALLOW:
                self._queued.setdefault(s.id, []).append(label)  # catch-up runs go one after another
            elif self._claimed_everywhere(s, due):
                self._after_claim(s.id, functools.partial(self._start_or_skip, label=label, due=due))

    def _record_missed(self, s: Schedule, dues: builtins.list[float], more: int) -> None:
        """Each miss is one record, written (or kept until the registry takes it) after the claim."""
        if not dues:
            return
        why = {CatchUp.COALESCE: "coalesced into one catch-up run", CatchUp.ALL: "over the catch-up limit",
               CatchUp.SKIP: "catch-up policy is skip"}[s.catchup]
        zone = s.trigger.timezone
        for due in dues[:MISSED_RECORDED_ONE_BY_ONE]:
            text = f"missed the fire due {local_text(due, zone)} (no scheduler was running); {why}"
            self._after_claim(s.id, functools.partial(self._record, kind=OutcomeKind.MISSED, message=text, trigger="missed"))
        rest = len(dues) - MISSED_RECORDED_ONE_BY_ONE
        if rest > 0 or more:
            count = f"{rest}" if rest > 0 else "more"
            text = (f"and {count} more missed fires up to {local_text(dues[-1], zone)}"
                    + (" (and more beyond the enumeration limit)" if more else ""))
            self._after_claim(s.id, functools.partial(self._record, kind=OutcomeKind.MISSED, message=text, trigger="missed"))

    def _record(self, s: Schedule, kind: OutcomeKind, message: str, trigger: str) -> int:
        return self.orch.record_unstarted(s.spec, Outcome(kind, None, message), schedule_id=s.id, trigger=trigger)

    # ------------------------------------------------------------------ starting runs
    def _live_runs(self, s: Schedule) -> builtins.list[int]:
        local = {rid for rid in self._active.get(s.id, set()) if self.orch.owns(rid)}
        if local:
            self._active[s.id] = local
        else:
            self._active.pop(s.id, None)
        stored = self.registry.query(RunQuery.of([RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.PAUSED.value],
                                                 schedule_id=s.id, limit=50))
        return sorted(local | {r.id for r in stored})

    def _start_or_skip(self, s: Schedule, label: str, due: float) -> FireResult:
        live = self._live_runs(s)
        if live and s.overlap is OverlapPolicy.FORBID:
            # the outcome already says "skipped": the message only says why ("skipped: run #19 still running ...")
            record = self._record(s, OutcomeKind.SKIPPED, f"run #{live[0]} still running (overlap policy forbid; "
                                  f"{label}, due {local_text(due, s.trigger.timezone)})", "skipped")
            return FireResult(s.id, FireAction.SKIPPED,
                              f"{s.name} is still running (run #{live[0]}); overlap policy 'forbid' skipped this fire",
                              blocking_run=live[0], record_id=record)
        if live and s.overlap is OverlapPolicy.QUEUE:
            self._queued.setdefault(s.id, []).append("queued fire")
            self.bus.publish(Notice(None, f"schedule {s.name!r}: fire queued behind run #{live[0]}", "info",
                                    {"schedule_id": s.id}))
            return FireResult(s.id, FireAction.QUEUED,
                              f"{s.name} is still running (run #{live[0]}); overlap policy 'queue' starts this fire "
                              "when it ends", blocking_run=live[0])
        if live and s.overlap is OverlapPolicy.REPLACE:
            for rid in live:
                self.orch.cancel(rid)
            run_id = self._submit(s, label)
            return FireResult(s.id, FireAction.REPLACED,
                              f"{s.name}: run #{live[0]} was cancelled (overlap policy 'replace'); started run #{run_id}",
                              run_id=run_id, blocking_run=live[0])
        run_id = self._submit(s, label)
        return FireResult(s.id, FireAction.STARTED, f"{s.name}: started run #{run_id}", run_id=run_id)

    def _submit(self, s: Schedule, label: str) -> int:
        opts = dict(s.options)
        run_id = self.orch.delay(s.spec, pattern=TaskPattern.PERIODIC, schedule_id=s.id, trigger=label, **opts)
        self._active.setdefault(s.id, set()).add(run_id)
        return run_id

    def run_now(self, key: int | str) -> int | None:
        """Fire once now, outside the trigger's grid, obeying the overlap policy. Returns the run id (None if skipped)."""
        return self.fire_now(key).run_id

    def fire_now(self, key: int | str) -> FireResult:
        """As `run_now`, but says what happened: started, or skipped/queued behind which run and why."""
        s = self.get(key)
        return self._start_or_skip(s, "run now", self.clock())

    def _on_event(self, ev: Event) -> None:
        if not isinstance(ev, RunChanged):
            return
        run = ev.run
        if run.schedule_id is None or run.status is not RunStatus.DONE:
            return
        active = self._active.get(run.schedule_id)
        if active is not None:
            active.discard(run.id)
            if not active:
                del self._active[run.schedule_id]  # nothing per run is kept once it ends
        waiting = self._queued.get(run.schedule_id)
        if waiting and not active:
            s = self._schedules.get(run.schedule_id)
            if s is not None and run.outcome is not None and run.outcome.kind not in (OutcomeKind.SKIPPED, OutcomeKind.MISSED):
                label = waiting.pop(0)
                self._after_claim(s.id, functools.partial(self._submit, label=label))
                self._poke()  # the loop writes it (or keeps it while the registry refuses)
                if not waiting:
                    del self._queued[run.schedule_id]



def _version(s: Schedule) -> tuple[object, ...]:
    """What changes when a schedule is edited or fired (by any process)."""
    return (s.updated_at, s.next_fire, s.last_fire, s.enabled, s.name)
