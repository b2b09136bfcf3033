"""How loud a line is in the workspace log.

Progress is info. Warning events and failures are warn. Conditions that stop a
workspace from ever starting until someone changes something (quota exceeded, image not
found, a missing Secret or ConfigMap, an invalid image name) are error. Rules match on
the event reason first and on message fragments second, since messages vary by runtime.
"""

from __future__ import annotations

import re

from logstream.lines import Level

# Reasons (events or container waiting reasons) that are fatal whatever the message.
FATAL_REASONS = frozenset(
    {"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"}
)

# Message fragments that make a Warning fatal.
_FATAL_MESSAGE = re.compile(
    r"exceeded quota"
    r"|is forbidden"
    r"|(secret|configmap|persistentvolumeclaim) \"[^\"]*\" not found"
    r"|couldn't find key"
    r"|manifest unknown"
    r"|not found: manifest"
    r"|repository does not exist"
    r"|pull access denied"
    r"|failed to resolve reference.*not found"
    r"|image.*not found",
    re.IGNORECASE,
)

# Normal-typed events that still report a problem.
_NORMAL_BUT_BAD = frozenset({"BackOff", "NotTriggerScaleUp", "Preempted"})


def event_level(event_type: str, reason: str, message: str) -> Level:
    """Level for a Kubernetes event."""
    if reason in FATAL_REASONS or (event_type == "Warning" and _FATAL_MESSAGE.search(message)):
        return Level.ERROR
    if event_type == "Warning" or reason in _NORMAL_BUT_BAD:
        return Level.WARN
    return Level.INFO


def waiting_level(reason: str, message: str) -> Level:
    """Level for a container stuck in `state.waiting`."""
    if reason in FATAL_REASONS or _FATAL_MESSAGE.search(message):
        return Level.ERROR
    return Level.WARN
