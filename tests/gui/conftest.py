import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session", autouse=True)
def gui_thread_collector(qapp):
    """As the app does at start (gui/app.py main): cycles are collected on the GUI thread only.
    Without it a worker thread frees a closed qasync loop's timer object and Qt crashes later."""
    from prismq_desktop.gui import gcguard

    return gcguard.install(qapp)
