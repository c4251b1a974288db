"""The run state diagram, its timestamps, and RunSpec serialisation.

The expected diagram is written out here independently of `models._ALLOWED`, so a change
to the product's table that is not a deliberate change to the documented diagram fails.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from prismq_desktop.core.models import (
    IllegalTransition,
    Outcome,
    OutcomeKind,
    Run,
    RunSpec,
    RunStatus,
    TargetKind,
    allowed_next,
    transition,
)

Q, R, P, D = RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED, RunStatus.DONE

# docs/architecture.md: queued -> running | done; running -> paused | done; paused -> running | done; done is final.
EXPECTED: dict[RunStatus, set[RunStatus]] = {Q: {R, D}, R: {P, D}, P: {R, D}, D: set()}

LEGAL = [(a, b) for a in RunStatus for b in RunStatus if b in EXPECTED[a]]
ILLEGAL = [(a, b) for a in RunStatus for b in RunStatus if b not in EXPECTED[a]]
SOME_OUTCOME = Outcome(OutcomeKind.FAILED, 3)


def make_run(status: RunStatus = Q, **kw) -> Run:
    kw.setdefault("created_at", 1.0)
    return Run(id=7, spec=RunSpec(target="job.py"), status=status, **kw)


def snapshot(run: Run) -> dict:
    return asdict(run)


# ---------------------------------------------------------------------------- the diagram


def test_expected_diagram_covers_every_status_and_matches_allowed_next():
    assert set(EXPECTED) == set(RunStatus)
    assert len(LEGAL) == 6 and len(ILLEGAL) == 10
    for status in RunStatus:
        assert allowed_next(status) == frozenset(EXPECTED[status])


@pytest.mark.parametrize(("before", "after"), LEGAL, ids=[f"{a.value}->{b.value}" for a, b in LEGAL])
def test_every_legal_transition_applies(before, after):
    run = make_run(before)
    outcome = Outcome(OutcomeKind.SUCCEEDED, 0) if after is D else None
    before_state = snapshot(run)
    result = transition(run, after, outcome, now=1000.0)
    assert result is not run and snapshot(run) == before_state  # a new snapshot; the old one is untouched
    assert result.status is after
    assert result.outcome == outcome
    assert result.is_active == (after is not D)


@pytest.mark.parametrize(("before", "after"), LEGAL, ids=[f"{a.value}->{b.value}" for a, b in LEGAL])
def test_legal_target_with_wrong_outcome_presence_raises_and_changes_nothing(before, after):
    run = make_run(before, started_at=5.0 if before is not Q else None)
    wrong = None if after is D else SOME_OUTCOME
    before_state = snapshot(run)
    with pytest.raises(IllegalTransition, match="outcome"):
        run = transition(run, after, wrong, now=1000.0)
    assert snapshot(run) == before_state


@pytest.mark.parametrize(("before", "after"), ILLEGAL, ids=[f"{a.value}->{b.value}" for a, b in ILLEGAL])
@pytest.mark.parametrize("outcome", [None, SOME_OUTCOME], ids=["no-outcome", "outcome"])
def test_every_illegal_transition_raises_and_changes_nothing(before, after, outcome):
    kw = {}
    if before is D:
        kw = {"outcome": Outcome(OutcomeKind.SUCCEEDED, 0), "started_at": 1.0, "ended_at": 2.0}
    elif before is not Q:
        kw = {"started_at": 1.0}
    run = make_run(before, **kw)
    before_state = snapshot(run)
    with pytest.raises(IllegalTransition) as info:
        run = transition(run, after, outcome, now=1000.0)
    assert f"{before.value} -> {after.value}" in str(info.value)
    assert snapshot(run) == before_state


@pytest.mark.parametrize("kind", list(OutcomeKind))
def test_done_accepts_every_outcome_kind(kind):
    run = make_run(R, started_at=1.0)
    run = transition(run, D, Outcome(kind, None, "why"), now=2.0)
    assert run.outcome.kind is kind and run.status is D


def test_status_given_as_its_string_value_obeys_the_same_rules():
    """`RunStatus` is a str enum ("done" == RunStatus.DONE), so callers holding the plain value
    (from the database, a combo box, JSON) must get the same guard as with the member: a legal
    move stores the member and sets the same timestamps, an illegal one raises IllegalTransition.
    """
    problems = []
    for before in RunStatus:
        for after in RunStatus:
            for outcome in (None, SOME_OUTCOME):
                by_enum, by_str = make_run(before), make_run(before)
                try:
                    by_enum = transition(by_enum, after, outcome, now=50.0)
                    enum_ok = True
                except IllegalTransition:
                    enum_ok = False
                case = f"{before.value} -> {after.value!r} ({'with' if outcome else 'no'} outcome)"
                try:
                    by_str = transition(by_str, after.value, outcome, now=50.0)
                except IllegalTransition:
                    if enum_ok:
                        problems.append(f"{case}: refused, but legal with the enum member")
                    continue
                except Exception as exc:  # noqa: BLE001 - any other exception is the finding
                    problems.append(f"{case}: {type(exc).__name__}: {exc}")
                    continue
                if not enum_ok:
                    problems.append(f"{case}: accepted, but illegal with the enum member -> {snapshot(by_str)['status']!r}")
                elif by_str.status is not after or snapshot(by_str) != snapshot(by_enum):
                    problems.append(f"{case}: stored status={by_str.status!r} started_at={by_str.started_at} "
                                    f"ended_at={by_str.ended_at}, enum gives {snapshot(by_enum)['status']!r} "
                                    f"started_at={by_enum.started_at} ended_at={by_enum.ended_at}")
    assert not problems, "\n".join(problems)


def test_done_as_plain_string_without_outcome_is_refused():
    """The invariant that matters most: no run ever becomes done without an outcome."""
    run = make_run(R, started_at=1.0)
    with pytest.raises(IllegalTransition):
        run = transition(run, "done")
    assert run.status is R and run.outcome is None and run.ended_at is None


# ---------------------------------------------------------------------------- timestamps


def test_timestamps_follow_the_lifecycle():
    run = make_run()
    assert run.started_at is None and run.ended_at is None and run.duration is None
    run = transition(run, R, now=100.0)
    assert run.started_at == 100.0 and run.ended_at is None
    run = transition(run, P, now=150.0)
    assert run.started_at == 100.0 and run.ended_at is None
    run = transition(run, R, now=200.0)  # resuming does not restart the clock
    assert run.started_at == 100.0
    run = transition(run, D, Outcome(OutcomeKind.SUCCEEDED, 0), now=300.0)
    assert (run.started_at, run.ended_at, run.duration) == (100.0, 300.0, 200.0)
    assert run.exit_code == 0 and run.error is None and not run.is_active


def test_queued_straight_to_done_never_started():
    run = make_run()
    run = transition(run, D, Outcome(OutcomeKind.CANCELLED, None, "cancelled while queued"), now=42.0)
    assert run.started_at is None and run.ended_at == 42.0 and run.duration is None
    assert run.error == "cancelled while queued" and run.exit_code is None


def test_timestamps_default_to_the_wall_clock():
    run = make_run()
    t0 = time.time()
    run = transition(run, R)
    run = transition(run, D, Outcome(OutcomeKind.FAILED, 2))
    t1 = time.time()
    assert t0 <= run.started_at <= run.ended_at <= t1
    assert run.exit_code == 2


def test_outcome_helpers():
    assert Outcome.from_exit_code(0) == Outcome(OutcomeKind.SUCCEEDED, 0)
    assert Outcome.from_exit_code(3) == Outcome(OutcomeKind.FAILED, 3)
    assert Outcome.from_exit_code(-9) == Outcome(OutcomeKind.FAILED, -9)
    assert Outcome(OutcomeKind.FAILED, 3).describe() == "failed (3)"
    assert Outcome(OutcomeKind.FAILED_TO_START, None, "script not found: x.py").describe() == (
        "failed to start: script not found: x.py"
    )
    assert Outcome(OutcomeKind.TIMED_OUT, None, "after 1s").describe() == "timed out: after 1s"
    assert Outcome(OutcomeKind.SUCCEEDED, 0).describe() == "succeeded"


# ---------------------------------------------------------------------------- random sequences

statuses = st.sampled_from(list(RunStatus))
outcomes = st.one_of(st.none(), st.builds(Outcome, st.sampled_from(list(OutcomeKind)), st.none() | st.integers(-64, 255)))


class RunLifecycle(RuleBasedStateMachine):
    """Random attempts at transitions, legal or not, against a model of the diagram."""

    @initialize()
    def start(self):
        self.run = make_run()
        self.clock = 1000.0
        self.first_start: float | None = None
        self.done_at: float | None = None
        self.history = [Q]

    @rule(target_status=statuses, outcome=outcomes)
    def attempt(self, target_status, outcome):
        self.clock += 1.0
        legal = target_status in EXPECTED[self.run.status] and (target_status is D) == (outcome is not None)
        before = snapshot(self.run)
        if not legal:
            with pytest.raises(IllegalTransition):
                transition(self.run, target_status, outcome, now=self.clock)
            assert snapshot(self.run) == before
            return
        self.run = transition(self.run, target_status, outcome, now=self.clock)
        self.history.append(target_status)
        if target_status is R and self.first_start is None:
            self.first_start = self.clock
        if target_status is D:
            self.done_at = self.clock

    @precondition(lambda self: self.run.status is D)
    @rule(target_status=statuses, outcome=outcomes)
    def done_is_final(self, target_status, outcome):
        before = snapshot(self.run)
        with pytest.raises(IllegalTransition):
            transition(self.run, target_status, outcome, now=self.clock + 1)
        assert snapshot(self.run) == before

    @invariant()
    def consistent(self):
        run = self.run
        assert (run.outcome is not None) == (run.status is D)
        assert run.started_at == self.first_start  # set once, by the first RUNNING, never moved
        assert run.ended_at == self.done_at
        if D in self.history:
            assert self.history[-1] is D and self.history.count(D) == 1
        if run.started_at is not None and run.ended_at is not None:
            assert run.ended_at >= run.started_at


TestRunLifecycle = RunLifecycle.TestCase
TestRunLifecycle.settings = settings(max_examples=60, stateful_step_count=20, deadline=None)


# ---------------------------------------------------------------------------- RunSpec

text = st.text(max_size=20)
maybe_text = st.none() | text
timeouts = st.none() | st.floats(min_value=0.001, max_value=1e6, allow_nan=False) | st.integers(1, 10_000)
specs = st.builds(
    RunSpec,
    target=st.text(min_size=1, max_size=30),
    args=st.one_of(text, st.lists(text, max_size=5).map(tuple), st.lists(text, max_size=5)),
    kind=st.sampled_from(list(TargetKind) + [k.value for k in TargetKind]),
    cwd=maybe_text,
    env=st.dictionaries(st.text(min_size=1, max_size=10), maybe_text, max_size=5),
    interpreter=maybe_text,
    soft_timeout=timeouts,
    hard_timeout=timeouts,
    grace_period=st.floats(min_value=0, max_value=1e4, allow_nan=False) | st.integers(0, 100),
    encoding=st.sampled_from(["utf-8", "latin-1", "cp1252", "utf-16"]),
    name=maybe_text,
)


@settings(max_examples=120, deadline=None)
@given(specs)
def test_runspec_dict_round_trip_through_json(spec):
    data = spec.to_dict()
    wire = json.loads(json.dumps(data))
    back = RunSpec.from_dict(wire)
    assert back == spec
    assert back.to_dict() == data
    assert type(back.args) is type(spec.args)  # a typed string stays a string, a list stays a tuple
    assert isinstance(back.kind, TargetKind)
    assert RunSpec.from_dict(json.loads(spec.json)) == spec
    assert json.loads(spec.json) == json.loads(json.dumps(data))


def test_args_string_versus_sequence():
    as_string = RunSpec(target="a.py", args="--name 'two words' x")
    assert as_string.args == "--name 'two words' x"
    assert as_string.to_dict()["args"] == "--name 'two words' x"
    assert RunSpec.from_dict(as_string.to_dict()).args == "--name 'two words' x"

    as_list = RunSpec(target="a.py", args=["--n", 3, 4.5])
    assert as_list.args == ("--n", "3", "4.5")
    assert as_list.to_dict()["args"] == ["--n", "3", "4.5"]
    assert RunSpec.from_dict({"target": "a.py", "args": ["x", "y"]}).args == ("x", "y")
    assert RunSpec(target="a.py", args=("only",)) == RunSpec(target="a.py", args=["only"])
    assert RunSpec(target="a.py", args="x") != RunSpec(target="a.py", args=("x",))


def test_from_dict_defaults_and_validation():
    spec = RunSpec.from_dict({"target": "tool"})
    assert spec == RunSpec(target="tool")
    assert spec.kind is TargetKind.AUTO and spec.args == () and spec.env == {} and spec.grace_period == 5.0
    assert RunSpec(target="m", kind="module").kind is TargetKind.MODULE
    with pytest.raises(ValueError):
        RunSpec(target="m", kind="bogus")
    with pytest.raises(KeyError):
        RunSpec.from_dict({"args": []})


def test_env_none_values_and_isolation_survive_round_trip():
    env = {"KEEP": "1", "DROP": None}
    spec = RunSpec(target="a.py", env=env)
    env["LATER"] = "x"  # the spec took its own copy
    assert spec.env == {"KEEP": "1", "DROP": None}
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))).env == {"KEEP": "1", "DROP": None}


def test_display_name():
    assert RunSpec(target="/a/b/job.py").display_name == "job.py"
    assert RunSpec(target="C:\\work\\job.py").display_name == "job.py"
    assert RunSpec(target="pkg.mod", kind="module").display_name == "pkg.mod"
    assert RunSpec(target="/a/b/", name=None).display_name == "/a/b/"
    assert RunSpec(target="/a/b/job.py", name="nightly").display_name == "nightly"


def test_non_finite_timeouts_do_not_break_the_round_trip():
    spec = RunSpec(target="a.py", soft_timeout=math.inf)
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_the_next_snapshot_is_what_dataclasses_replace_would_make() -> None:
    """transition()/with_changes() copy the fields instead of calling __init__ (issue #17): the
    result must be the same snapshot, normalised the same way, and unknown fields refused."""
    import dataclasses

    from prismq_desktop.core.models import Run, RunMode, RunSpec, RunStatus, transition
    from prismq_desktop.core.patterns import Priority

    run = Run(id=7, spec=RunSpec("/bin/true", kind="executable"), mode="async", priority=1, options={"a": 1})
    started = transition(run, "running", pid=12, argv=["/bin/true", "x"], depends_on=[3])
    made = dataclasses.replace(run, status=RunStatus.RUNNING, outcome=None, pid=12, argv=("/bin/true", "x"),
                               depends_on=(3,), started_at=started.started_at)
    assert started == made and started.argv == ("/bin/true", "x") and started.depends_on == (3,)
    assert started.status is RunStatus.RUNNING and started.mode is RunMode.ASYNC and run.status is RunStatus.QUEUED
    moved = started.with_changes(priority="low", progress=0.5)
    assert moved == dataclasses.replace(started, priority=moved.priority, progress=0.5)
    assert moved.priority is Priority.LOW and started.priority is Priority.HIGH
    with pytest.raises(TypeError, match="no field"):
        started.with_changes(not_a_field=1)
    with pytest.raises(TypeError, match="no field"):
        transition(run, RunStatus.RUNNING, bogus=2)
