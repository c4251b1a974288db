"""The window (PySide6 + qasync) over the core.

Importing this package first makes PySide6's per-import check cheap (`qtboot.install`):
every module imported after PySide6 is otherwise read through `inspect.getsource` to
see whether it mentions PySide6, ~0.4 ms a module and ~0.1 s of the window's start
(issue 17). Without PySide6 (the core-only install) this is a no-op and `gui.app`'s own
import says what is missing.
"""

from prismq_desktop.gui import qtboot

qtboot.install()
