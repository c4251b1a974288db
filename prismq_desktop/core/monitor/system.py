"""Whole-machine figures for the resource monitor's `SystemSample`."""

from __future__ import annotations

import time

import psutil

from prismq_desktop.core.monitor.samples import SystemSample


class SystemReader:
    """Whole-machine figures; CPU % per core from its own baseline of cpu_times (not psutil's global one)."""

    def __init__(self, disk_path: str) -> None:
        self.disk_path = disk_path
        self._last: list[tuple[float, float]] | None = self._cpu_times()

    @staticmethod
    def _cpu_times() -> list[tuple[float, float]]:
        """(busy, total) seconds per core, counted as psutil.cpu_percent counts them."""
        out = []
        for ct in psutil.cpu_times(percpu=True):
            total = float(sum(ct))
            # guest time is already inside user/nice on Linux
            total -= float(getattr(ct, "guest", 0.0)) + float(getattr(ct, "guest_nice", 0.0))
            idle = float(ct.idle) + float(getattr(ct, "iowait", 0.0))
            out.append((total - idle, total))
        return out

    def read(self) -> SystemSample:
        now = self._cpu_times()
        last = self._last if self._last is not None and len(self._last) == len(now) else None
        per: list[float] = []
        for i, (busy, total) in enumerate(now):
            if last is None:
                per.append(0.0)
                continue
            d_total = total - last[i][1]
            d_busy = busy - last[i][0]
            per.append(round(min(100.0, max(0.0, d_busy / d_total * 100.0)), 1) if d_total > 0 else 0.0)
        self._last = now
        vm = psutil.virtual_memory()
        try:
            swap = float(psutil.swap_memory().percent)
        except (OSError, RuntimeError):
            swap = 0.0
        disk_total: int | None = None
        disk_used: int | None = None
        disk_percent: float | None = None
        try:
            du = psutil.disk_usage(self.disk_path)
            disk_total, disk_used, disk_percent = int(du.total), int(du.used), float(du.percent)
        except OSError:
            pass
        load: tuple[float, float, float] | None = None
        getloadavg = getattr(psutil, "getloadavg", None)
        if getloadavg is not None:
            try:
                one, five, fifteen = getloadavg()
                load = (float(one), float(five), float(fifteen))
            except (OSError, RuntimeError, AttributeError):
                load = None
        return SystemSample(
            time=time.time(),
            cpu_percent_per_core=tuple(per),
            mem_total=int(vm.total),
            mem_used=int(vm.used),
            mem_percent=float(vm.percent),
            swap_percent=swap,
            disk_path=self.disk_path,
            disk_total=disk_total,
            disk_used=disk_used,
            disk_percent=disk_percent,
            load_avg=load,
        )
