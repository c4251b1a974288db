"""TaskPattern, Priority and PatternAdvisor: the flowchart, the explanations and auto-selection."""

from __future__ import annotations

import pytest

from prismq_desktop.core.patterns import PatternAdvisor, PatternInfo, Priority, Recommendation, TaskPattern


def rec(**kw) -> Recommendation:
    r = PatternAdvisor.recommend(**kw)
    assert isinstance(r, Recommendation)
    assert r.reason.strip(), "a recommendation always says why"
    assert "\n" not in r.reason, "the reason is one line"
    return r


# ---------------------------------------------------------------- recommend: every branch of the flowchart
def test_recommend_recurring_is_periodic_and_beats_everything_else():
    assert rec(recurring=True).pattern is TaskPattern.PERIODIC
    everything = dict(recurring=True, requires_streaming=True, concurrent_tasks=5, needs_result=False,
                      high_frequency=True, expected_duration_seconds=3600)
    r = rec(**everything)
    assert r.pattern is TaskPattern.PERIODIC
    assert "schedule" in r.reason


def test_recommend_streaming_is_long_running_and_beats_batch_and_no_result():
    r = rec(requires_streaming=True)
    assert r.pattern is TaskPattern.LONG_RUNNING
    assert "progress" in r.reason or "output" in r.reason
    assert rec(requires_streaming=True, concurrent_tasks=8, needs_result=False, high_frequency=True).pattern is (
        TaskPattern.LONG_RUNNING
    )


def test_recommend_several_tasks_is_concurrent_with_the_count_in_the_reason():
    r = rec(concurrent_tasks=7)
    assert r.pattern is TaskPattern.CONCURRENT
    assert "7" in r.reason
    assert rec(concurrent_tasks=2, needs_result=False, high_frequency=True).pattern is TaskPattern.CONCURRENT


def test_recommend_one_task_is_not_concurrent():
    assert rec(concurrent_tasks=1).pattern is TaskPattern.SIMPLE
    assert rec(concurrent_tasks=0).pattern is TaskPattern.SIMPLE


def test_recommend_no_result_needed_is_fire_and_forget_and_beats_high_frequency():
    r = rec(needs_result=False)
    assert r.pattern is TaskPattern.FIRE_AND_FORGET
    assert rec(needs_result=False, high_frequency=True, expected_duration_seconds=600).pattern is TaskPattern.FIRE_AND_FORGET


def test_recommend_high_frequency_is_pooled_and_beats_a_long_duration():
    r = rec(high_frequency=True)
    assert r.pattern is TaskPattern.POOLED
    assert rec(high_frequency=True, expected_duration_seconds=600).pattern is TaskPattern.POOLED


def test_recommend_long_task_nudges_to_long_running_with_the_duration_in_the_reason():
    r = rec(expected_duration_seconds=300)
    assert r.pattern is TaskPattern.LONG_RUNNING
    assert "300" in r.reason
    assert rec(expected_duration_seconds=61).pattern is TaskPattern.LONG_RUNNING


@pytest.mark.parametrize("duration", [None, 0, 5, 59.9])
def test_recommend_short_or_unknown_duration_is_simple(duration):
    r = rec(expected_duration_seconds=duration)
    assert r.pattern is TaskPattern.SIMPLE


def test_recommend_the_guides_summary_call():
    """The call at the end of the pattern guide: 300 s with streaming → LONG_RUNNING."""
    r = PatternAdvisor.recommend(expected_duration_seconds=300, requires_streaming=True, concurrent_tasks=1,
                                 needs_result=True, recurring=False, high_frequency=False)
    assert r.pattern is TaskPattern.LONG_RUNNING


# ---------------------------------------------------------------- explain
@pytest.mark.parametrize("pattern", list(TaskPattern))
def test_explain_every_pattern(pattern):
    info = PatternAdvisor.explain(pattern)
    assert isinstance(info, PatternInfo)
    assert info.pattern is pattern
    assert info.name.strip()
    assert info.when_to_use.strip()
    assert info.benefits and all(b.strip() for b in info.benefits)
    assert info.limitations and all(x.strip() for x in info.limitations)
    assert PatternAdvisor.explain(pattern.value) == info  # by name as well


def test_explanations_are_distinct_and_accept_loose_names():
    infos = [PatternAdvisor.explain(p) for p in TaskPattern]
    assert len({i.name for i in infos}) == len(infos)
    assert len({i.when_to_use for i in infos}) == len(infos)
    assert PatternAdvisor.explain("Long-Running").pattern is TaskPattern.LONG_RUNNING
    assert PatternAdvisor.explain("fire and forget").pattern is TaskPattern.FIRE_AND_FORGET
    with pytest.raises(ValueError, match="unknown pattern"):
        PatternAdvisor.explain("sometimes")


# ---------------------------------------------------------------- auto-selection (what execute() uses)
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"streaming": True}, TaskPattern.LONG_RUNNING),
        ({"tasks": [["a"], ["b"]]}, TaskPattern.CONCURRENT),
        ({"tasks": []}, TaskPattern.CONCURRENT),
        ({"wait_for_result": False}, TaskPattern.FIRE_AND_FORGET),
        ({"interval_seconds": 3600}, TaskPattern.PERIODIC),
        ({"interval_seconds": 0}, TaskPattern.PERIODIC),
        ({"cron": "0 3 * * *"}, TaskPattern.PERIODIC),
        ({"use_pool": True}, TaskPattern.POOLED),
        ({}, TaskPattern.SIMPLE),
        ({"streaming": False, "wait_for_result": True, "use_pool": False, "tasks": None}, TaskPattern.SIMPLE),
        ({"timeout": 5, "args": ["x"]}, TaskPattern.SIMPLE),
    ],
)
def test_select_from_options(options, expected):
    assert PatternAdvisor.select(options) is expected


@pytest.mark.parametrize(
    "options",
    [{"interval_seconds": 60, "streaming": True}, {"cron": "0 * * * *", "wait_for_result": False},
     {"cron": "0 * * * *", "use_pool": True}],
)
def test_select_puts_a_schedule_first_like_the_flowchart(options):
    """The guide's flowchart (and recommend()) asks "runs on schedule?" before anything else."""
    assert PatternAdvisor.select(options) is TaskPattern.PERIODIC


# ---------------------------------------------------------------- parsing
def test_task_pattern_parse():
    assert TaskPattern.parse(TaskPattern.POOLED) is TaskPattern.POOLED
    assert TaskPattern.parse(" Fire-And-Forget ") is TaskPattern.FIRE_AND_FORGET
    assert TaskPattern.parse("long running") is TaskPattern.LONG_RUNNING
    with pytest.raises(ValueError, match="choose from"):
        TaskPattern.parse("batchy")


def test_priority_order_and_parse():
    assert Priority.CRITICAL < Priority.HIGH < Priority.NORMAL < Priority.LOW
    assert Priority.parse("high") is Priority.HIGH
    assert Priority.parse(" CRITICAL ") is Priority.CRITICAL
    assert Priority.parse(3) is Priority.LOW
    assert Priority.parse(Priority.NORMAL) is Priority.NORMAL
    with pytest.raises(ValueError, match="unknown priority"):
        Priority.parse("urgent")
    with pytest.raises(ValueError):
        Priority.parse(9)
