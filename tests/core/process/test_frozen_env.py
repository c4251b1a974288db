"""What a frozen (PyInstaller) app must not pass on to a user's Python."""

import sys

from prismq_desktop.core.process import launch


def test_bundle_variables_are_cleaned_for_children(monkeypatch, tmp_path):
    bundle = tmp_path / "bundle" / "_internal"
    bundle.mkdir(parents=True)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    env = {
        "LD_LIBRARY_PATH": f"{bundle}:/usr/lib/custom",
        "LD_LIBRARY_PATH_ORIG": "/usr/lib/custom",
        "QT_PLUGIN_PATH": str(bundle / "PySide6" / "plugins"),
        "QML2_IMPORT_PATH": str(bundle / "qml"),
        "QT_QPA_PLATFORM": "wayland",  # the user's own: kept
        "HOME": "/home/me",
    }
    out = launch.child_environment({}, base=env)
    assert out["LD_LIBRARY_PATH"] == "/usr/lib/custom" and "LD_LIBRARY_PATH_ORIG" not in out
    assert "QT_PLUGIN_PATH" not in out and "QML2_IMPORT_PATH" not in out
    assert out["QT_QPA_PLATFORM"] == "wayland" and out["HOME"] == "/home/me"
    no_orig = launch.child_environment({}, base={"LD_LIBRARY_PATH": str(bundle)})
    assert "LD_LIBRARY_PATH" not in no_orig


def test_not_frozen_leaves_the_environment_alone(monkeypatch):
    monkeypatch.delattr(sys, "frozen", raising=False)
    env = {"LD_LIBRARY_PATH": "/opt/x", "QT_PLUGIN_PATH": "/opt/qt"}
    out = launch.child_environment({}, base=env)
    assert out["LD_LIBRARY_PATH"] == "/opt/x" and out["QT_PLUGIN_PATH"] == "/opt/qt"
