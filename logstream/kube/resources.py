"""The Kubernetes resources the controller reads, and which selectors apply to each."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Resource:
    """One listable, watchable resource kind."""

    plural: str  # as in the URL: "pods"
    kind: str  # as in involvedObject.kind and ownerReferences: "Pod"
    api_prefix: str  # "/api/v1" or "/apis/apps/v1"
    # Selectors the user configured apply only where they make sense: the field selector
    # names pod fields, and events must never be filtered by the workload's labels.
    takes_label_selector: bool
    takes_field_selector: bool

    def collection_path(self, namespace: str | None) -> str:
        """URL path of the collection in one namespace, or cluster-wide for None."""
        if namespace:
            return f"{self.api_prefix}/namespaces/{namespace}/{self.plural}"
        return f"{self.api_prefix}/{self.plural}"


PODS = Resource("pods", "Pod", "/api/v1", True, True)
REPLICASETS = Resource("replicasets", "ReplicaSet", "/apis/apps/v1", True, False)
STATEFULSETS = Resource("statefulsets", "StatefulSet", "/apis/apps/v1", True, False)
JOBS = Resource("jobs", "Job", "/apis/batch/v1", True, False)
# Claims are matched to pods by name; a workload label selector would hide them.
PVCS = Resource("persistentvolumeclaims", "PersistentVolumeClaim", "/api/v1", False, False)
EVENTS = Resource("events", "Event", "/api/v1", False, False)

# Owners whose pod template may carry a token, in the order their watchers start.
WORKLOADS = (REPLICASETS, STATEFULSETS, JOBS)
# Everything an event can be routed to must be indexed before events are read.
INDEXED = (PODS, *WORKLOADS, PVCS)
