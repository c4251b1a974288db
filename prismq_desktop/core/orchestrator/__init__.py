"""The orchestrator: one queue, one concurrency limit, retries, dead letters, the six patterns.

queue.py (when runs start) < chains.py, retry.py, results.py, specs.py (data) < execute.py
(the six patterns over the public operations) < orchestrator.py (TaskOrchestrator).
"""

from prismq_desktop.core.orchestrator.execute import PatternUnavailable
from prismq_desktop.core.orchestrator.orchestrator import DEFAULT_MAX_CONCURRENT, TaskOrchestrator
from prismq_desktop.core.orchestrator.queue import Clock, LoopClock, RunQueue
from prismq_desktop.core.orchestrator.results import TaskMetrics, TaskResult
from prismq_desktop.core.orchestrator.retry import RetryPolicy

__all__ = ["DEFAULT_MAX_CONCURRENT", "Clock", "LoopClock", "PatternUnavailable", "RetryPolicy", "RunQueue",
           "TaskMetrics", "TaskOrchestrator", "TaskResult"]
