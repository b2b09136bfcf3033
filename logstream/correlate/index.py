"""The index of workspace objects: which uid carries which agent tokens.

Only objects that carry a token are kept, one small entry each, so memory follows the
number of workspaces rather than the size of the cluster. Entries are keyed by uid;
names serve display and the rare event without an involvedObject.uid. The index counts
how many objects use each token, so the correlator knows when a token's last object is
gone and its stream can be released.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NewType

from logstream.correlate.podstatus import PodStatusMemory
from logstream.lines import AgentToken

Uid = NewType("Uid", str)
NameKey = tuple[str, str, str]  # (kind, namespace, name)

# Labels Coder's Kubernetes templates put on workspace objects, shown in our own log.
WORKSPACE_LABELS = {
    "com.coder.user.username": "owner",
    "com.coder.workspace.name": "workspace",
    "com.coder.workspace.id": "workspace_id",
    "com.coder.agent.name": "agent_name",
}


@dataclass(slots=True)
class Tracked:
    """One workspace object: a pod, or a ReplicaSet, StatefulSet or Job with a template."""

    uid: Uid
    kind: str
    namespace: str
    name: str
    tokens: tuple[AgentToken, ...]
    workspace: dict[str, str] = field(default_factory=dict)
    claims: tuple[str, ...] = ()
    status: PodStatusMemory | None = None
    # event uid -> (occurrences, message) last emitted or counted at startup
    events: dict[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def display(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


class WorkspaceIndex:
    """uid -> Tracked, with lookups by name and by mounted claim, and token use counts."""

    def __init__(self) -> None:
        self._by_uid: dict[Uid, Tracked] = {}
        self._by_name: dict[NameKey, Uid] = {}
        self._by_claim: dict[tuple[str, str], set[Uid]] = {}
        self._token_use: Counter[AgentToken] = Counter()

    def __len__(self) -> int:
        return len(self._by_uid)

    def get(self, uid: str) -> Tracked | None:
        return self._by_uid.get(Uid(uid))

    def find_by_name(self, kind: str, namespace: str, name: str) -> Tracked | None:
        uid = self._by_name.get((kind, namespace, name))
        return self._by_uid.get(uid) if uid else None

    def pods_mounting(self, namespace: str, claim: str) -> list[Tracked]:
        uids = self._by_claim.get((namespace, claim), set())
        return [self._by_uid[uid] for uid in sorted(uids) if uid in self._by_uid]

    def uids_of(self, kind: str, namespace: str | None) -> list[Uid]:
        """Tracked uids of one kind, in one namespace or all of them."""
        return [
            uid
            for uid, entry in self._by_uid.items()
            if entry.kind == kind and (namespace is None or entry.namespace == namespace)
        ]

    def add(self, entry: Tracked) -> None:
        self._by_uid[entry.uid] = entry
        self._by_name[(entry.kind, entry.namespace, entry.name)] = entry.uid
        for claim in entry.claims:
            self._by_claim.setdefault((entry.namespace, claim), set()).add(entry.uid)
        self._token_use.update(entry.tokens)

    def remove(self, uid: str) -> tuple[Tracked | None, list[AgentToken]]:
        """Forget an entry; also return the tokens no other entry uses any more."""
        entry = self._by_uid.pop(Uid(uid), None)
        if entry is None:
            return None, []
        name_key = (entry.kind, entry.namespace, entry.name)
        if self._by_name.get(name_key) == entry.uid:
            del self._by_name[name_key]
        for claim in entry.claims:
            users = self._by_claim.get((entry.namespace, claim))
            if users is not None:
                users.discard(entry.uid)
                if not users:
                    del self._by_claim[(entry.namespace, claim)]
        released = []
        for token in entry.tokens:
            self._token_use[token] -= 1
            if self._token_use[token] <= 0:
                del self._token_use[token]
                released.append(token)
        return entry, released
