"""logstream-kube: stream Kubernetes signals about Coder workspaces into their startup logs.

Data flow, one subpackage per stage:

    kube/       list and watch the API server, hand on raw JSON dicts
    correlate/  own the index of workspace objects and their tokens, turn changes into lines
    deliver/    one ordered queue and sender per agent token, Coder REST client, dry-run sink
    ops/        metrics, health and readiness endpoints, controller logging

`app.py` wires the stages together under one task group; `cli.py` is the entry point.
"""

__version__ = "0.1.0"
