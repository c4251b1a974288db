"""Just enough of a web framework for the reference documents' route examples.

The documents decorate handlers with `@app.post(path)` (FastAPI, PacificPy); the tests keep the
routes and call a handler directly, as a request would, so only the decorator is needed.
"""

from __future__ import annotations


class Routes:
    """`@app.post(path)` keeps the handler in `routes`, unchanged."""

    def __init__(self):
        self.routes = {}

    def post(self, path):
        def register(fn):
            self.routes[path] = fn
            return fn
        return register

    def run(self):
        return "serving"


class Request:
    """A request whose JSON body is `body`."""

    def __init__(self, body):
        self.body = body

    async def json(self):
        return self.body
