"""History's first page of a common text before its exact count (a real registry on a real file):
the label says "at least N runs, counting…" until the count arrives, the count is exact and
follows runs announced meanwhile, and a newer filter's count is never overwritten by an older one."""

from __future__ import annotations

from dataclasses import replace

import pytest
from PySide6.QtCore import QSettings

from prismq_desktop.core import RunSpec
from prismq_desktop.core.store.registry import RunRegistry
from prismq_desktop.gui.history_view import HistoryView
from prismq_desktop.gui.models import HistoryModel


def consistent(model: HistoryModel) -> None:
    reg = model.registry
    expected = reg.query(replace(model.query(), limit=max(1, len(model._runs))))
    assert [r.id for r in model._runs] == [r.id for r in expected][: len(model._runs)]
    assert model.total == reg.count(model.query())


@pytest.fixture
def reg(home, monkeypatch):
    monkeypatch.setattr(RunRegistry, "COMMON_MATCHES", 30)
    monkeypatch.setattr(HistoryModel, "PAGE", 10)
    registry = RunRegistry(home / "registry.sqlite3")
    registry.insert([registry.new_run(RunSpec("/w/x.py", name="common_x" if i % 3 == 0 else f"other {i}"),
                                      created_at=1000.0 + i) for i in range(100)])
    assert registry.index_pending() == 0
    yield registry
    registry.close()


def test_a_common_text_shows_its_first_page_then_its_exact_count(qapp, qtmodeltester, reg):
    model = HistoryModel(reg)
    seen: list[tuple[int, bool]] = []
    model.total_changed.connect(lambda: seen.append((model.total, model.counting)))
    model.set_filter("common")  # 34 runs: over the cap of 30
    assert model.counting and model.rowCount() == 10 and model.total == 30
    assert model.count_text() == "at least 30 runs, counting…"
    late = reg.create(RunSpec("/w/x.py", name="common late"), created_at=5000.0)  # announced before the count
    model.upsert(late)
    assert model.rowCount() == 11 and model._runs[0].id == late.id
    qapp.processEvents()
    assert seen == [(35, False)] and model.count_text() == "35 runs"
    consistent(model)
    qtmodeltester.check(model, force_py=True)
    later = reg.create(RunSpec("/w/x.py", name="common later"), created_at=6000.0)  # after the count: counted once
    model.upsert(later)
    assert model.total == 36
    consistent(model)

    model.set_filter("common lat")  # under the cap: exact at once, nothing deferred
    assert not model.counting and model.total == 2 == reg.count(model.query())


def test_only_the_newest_filter_sets_the_count_and_the_last_page_ends_counting(qapp, reg):
    model = HistoryModel(reg)
    seen: list[int] = []
    model.total_changed.connect(lambda: seen.append(model.total))
    model.set_filter("common")
    model.set_filter("other")  # 66 runs: its own count, the first one's is dropped
    assert model.counting
    qapp.processEvents()
    assert seen == [66] and model.total == 66 and not model.counting
    consistent(model)

    model.set_filter("common")
    while model.canFetchMore():  # paged to the end before the count ran: the last page says how many
        model.fetchMore()
    assert not model.counting and model.total == 34 == model.rowCount() and seen == [66, 34]
    qapp.processEvents()  # the posted count finds nothing left to do
    assert seen == [66, 34] and model.total == 34


def test_the_history_label_says_counting_then_the_exact_count(qapp, home, reg):
    settings = QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)
    view = HistoryView(reg, settings)
    try:
        view.history_filter.setText("common")
        view.apply_filter()
        assert view.history_count.text().startswith("at least 30 runs, counting… · filtered in ")
        qapp.processEvents()
        assert view.history_count.text().startswith("34 runs · filtered in ")
    finally:
        view._indexer.stop()
        view.deleteLater()
        qapp.processEvents()
