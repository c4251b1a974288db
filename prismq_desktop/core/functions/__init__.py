"""Python functions as tasks (issue 15).

`payload` encodes a call and decodes a result (no other imports, so the engine and models can
use it); `runner` is the file a child interpreter runs to import and call the function; `tasks`
the `@task` decorator is `prismq_desktop.tasks` (outside the core, so a child importing decorated functions stays light).
"""
