"""PatternAdvisor: the guide's flowchart as a function, plus explain(pattern).

Guide:  pattern = PatternAdvisor.recommend(expected_duration_seconds=300, requires_streaming=True,
            concurrent_tasks=1, needs_result=True, recurring=False, high_frequency=False)
Here:   the same call returns a Recommendation (pattern + one-line reason).

Usage:  python examples/pattern_advisor.py
"""

from __future__ import annotations

from prismq_desktop.core.patterns import PatternAdvisor, TaskPattern

CASES = {
    "the guide's summary call": dict(expected_duration_seconds=300, requires_streaming=True, concurrent_tasks=1,
                                     needs_result=True, recurring=False, high_frequency=False),
    "nightly cleanup": dict(recurring=True),
    "video encoding with a progress bar": dict(requires_streaming=True),
    "100 images": dict(concurrent_tasks=100),
    "analytics event": dict(needs_result=False),
    "API request handling": dict(high_frequency=True),
    "database migration (10 min)": dict(expected_duration_seconds=600),
    "config update": dict(expected_duration_seconds=2),
}

for label, kwargs in CASES.items():
    rec = PatternAdvisor.recommend(**kwargs)
    print(f"{label:36} -> {rec.pattern.value:16} ({rec.reason})")

print()
for pattern in TaskPattern:
    info = PatternAdvisor.explain(pattern)
    print(f"{info.name}: {info.when_to_use}")
    print(f"  + {'; '.join(info.benefits)}")
    print(f"  - {'; '.join(info.limitations)}")
