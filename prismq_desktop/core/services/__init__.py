"""Operations shared by the window and the CLI, over the core's stores (Qt-free).

Each service takes the store it works on (a `RunRegistry`, ...) as a parameter; none
builds an engine or an orchestrator.
"""
