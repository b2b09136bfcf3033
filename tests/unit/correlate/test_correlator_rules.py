"""Correlator rules beyond the scenarios: startup, relists, routing and bad objects."""

from __future__ import annotations

import logging

from logstream.kube.resources import EVENTS, PODS, PVCS, REPLICASETS
from logstream.lines import MAX_LINE_CHARS, Level
from tests.support.objects import event, pod, replicaset, with_count


async def test_startup_list_indexes_without_emitting(feed, sink):
    p = pod("ws", token="tok")
    old = event(p, reason="FailedMount", message="old", count=3)
    await feed(PODS, "ADDED", p, initial=True)
    await feed(EVENTS, "ADDED", old, initial=True)
    await feed(EVENTS, "MODIFIED", old)

    assert sink.lines == []

    await feed(EVENTS, "MODIFIED", with_count(old, 4))
    assert sink.texts("tok") == ["Warning FailedMount Pod/ws: old (x4)"]


async def test_relist_replays_nothing_already_sent(feed, sink):
    p = pod("ws", token="tok")
    ev = event(p, reason="FailedMount", message="m")
    await feed(PODS, "ADDED", p)
    await feed(EVENTS, "ADDED", ev)
    await feed(PODS, "ADDED", p)
    await feed(EVENTS, "ADDED", ev)
    await feed.listed(PODS, "coder-ws", {p["metadata"]["uid"]}, initial=False)

    assert sink.texts("tok") == ["Pod ws created", "Warning FailedMount Pod/ws: m"]


async def test_relist_without_a_pod_announces_its_deletion(feed, sink):
    p = pod("ws", token="tok")
    await feed(PODS, "ADDED", p)
    await feed.listed(PODS, "coder-ws", set(), initial=False)

    assert sink.texts("tok") == ["Pod ws created", "Pod ws deleted"]
    assert sink.released == ["tok"]


async def test_token_shared_by_owner_and_pod_is_released_with_the_last(feed, sink):
    rs = replicaset("ws", token="tok")
    p = pod("ws-abc", token="tok")
    await feed(REPLICASETS, "ADDED", rs)
    await feed(PODS, "ADDED", p)
    await feed(PODS, "DELETED", p)
    assert sink.released == []

    await feed(REPLICASETS, "DELETED", rs)
    assert sink.released == ["tok"]


async def test_event_before_its_pod_is_delivered_once_the_pod_appears(feed, sink):
    p = pod("ws", token="tok")
    await feed(EVENTS, "ADDED", event(p, type="Normal", reason="Scheduled", message="assigned"))
    await feed(PODS, "ADDED", p)

    assert sink.texts("tok") == ["Pod ws created", "Normal Scheduled Pod/ws: assigned"]


async def test_event_without_uid_falls_back_to_kind_namespace_and_name(feed, sink):
    p = pod("ws", token="tok")
    await feed(PODS, "ADDED", p)
    ev = event(p, reason="Failed", message="boom")
    ev["involvedObject"].pop("uid")
    await feed(EVENTS, "ADDED", ev)

    assert sink.texts("tok")[-1] == "Warning Failed Pod/ws: boom"


async def test_claim_events_reach_pods_that_mount_the_claim(feed, sink):
    volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "ws-home"}}]
    await feed(PODS, "ADDED", pod("ws", token="tok", volumes=volumes))
    await feed(PODS, "ADDED", pod("other", token="other"))
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "ws-home", "namespace": "coder-ws", "uid": "pvc-1"}}
    await feed(EVENTS, "ADDED", event(claim, reason="ProvisioningFailed", message="no storage class"))
    await feed(PVCS, "MODIFIED", {**claim, "status": {"phase": "Bound"}})

    assert sink.texts("tok")[1:] == [
        "Warning ProvisioningFailed PersistentVolumeClaim/ws-home: no storage class",
        "PersistentVolumeClaim ws-home is Bound",
    ]
    assert sink.texts("other") == ["Pod other created"]


async def test_eviction_unschedulable_and_disruption_are_warnings(feed, sink):
    p = pod("ws", token="tok")
    await feed(PODS, "ADDED", p, initial=True)
    p["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"}]}
    await feed(PODS, "MODIFIED", p)
    p["status"] = {"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory.",
                   "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet", "message": "low memory"}]}
    await feed(PODS, "MODIFIED", p)
    await feed(PODS, "MODIFIED", p)

    assert sink.texts("tok") == [
        "Pod cannot be scheduled: 0/3 nodes are available",
        "Pod is being disrupted (TerminationByKubelet): low memory",
        "Pod was evicted: The node was low on resource: memory.",
    ]
    assert {line.level for line in sink.lines} == {Level.WARN}


async def test_long_messages_are_cut_with_a_marker(feed, sink):
    p = pod("ws", token="tok")
    await feed(PODS, "ADDED", p, initial=True)
    await feed(EVENTS, "ADDED", event(p, reason="Failed", message="x" * 5000))

    line = sink.lines[0].text
    assert len(line) == MAX_LINE_CHARS
    assert line.endswith("…[truncated]")


async def test_bad_objects_are_logged_and_skipped(feed, sink, caplog):
    caplog.set_level(logging.WARNING, logger="logstream")
    await feed(PODS, "ADDED", {"metadata": "nope"})
    await feed(EVENTS, "ADDED", {"metadata": {"name": "e"}, "involvedObject": {}})
    await feed(PODS, "DELETED", {"metadata": {"uid": "gone"}})  # a tombstone for an unknown pod
    await feed(PODS, "ADDED", {"metadata": {"uid": "p", "name": "ws", "namespace": "ns"}, "spec": {"containers": 3}})
    await feed(PODS, "ADDED", pod("ws-ok", token="tok"))

    assert sink.texts("tok") == ["Pod ws-ok created"]
    assert sum("skipping an object" in r.getMessage() for r in caplog.records) == 2


async def test_forbidden_secret_warns_once_and_other_pods_continue(feed, sink, secrets, caplog):
    caplog.set_level(logging.WARNING, logger="logstream")
    secrets.forbidden.add(("coder-ws", "agent"))
    env = [{"name": "CODER_AGENT_TOKEN", "valueFrom": {"secretKeyRef": {"name": "agent", "key": "t"}}}]
    p = pod("ws-secret")
    p["spec"]["containers"][0]["env"] = env
    await feed(PODS, "ADDED", p)
    await feed(PODS, "MODIFIED", p)
    await feed(PODS, "ADDED", pod("ws-ok", token="tok"))

    warnings = [r for r in caplog.records if "not allowed to read" in r.getMessage()]
    assert len(warnings) == 1
    assert "ws-secret" in str(warnings[0].__dict__)
    assert sink.texts("tok") == ["Pod ws-ok created"]


async def test_optional_missing_secret_is_skipped_quietly(feed, sink, caplog):
    caplog.set_level(logging.INFO, logger="logstream")
    p = pod("ws")
    p["spec"]["containers"][0]["env"] = [{"name": "CODER_AGENT_TOKEN", "valueFrom": {"secretKeyRef": {"name": "none", "key": "t", "optional": True}}}]
    await feed(PODS, "ADDED", p)

    assert sink.lines == []
    assert not any("secret" in r.getMessage() for r in caplog.records)


def secret_token_pod(name: str) -> dict:
    p = pod(name)
    p["spec"]["containers"][0]["env"] = [
        {"name": "CODER_AGENT_TOKEN", "valueFrom": {"secretKeyRef": {"name": "agent", "key": "t"}}}
    ]
    return p


async def test_event_retries_a_secret_created_after_its_pod(feed, sink, secrets):
    p = secret_token_pod("ws-late")
    await feed(PODS, "ADDED", p)
    assert sink.lines == []

    secrets.data[("coder-ws", "agent")] = {"t": "tok-late"}
    await feed(EVENTS, "ADDED", event(p, type="Normal", reason="Scheduled", message="assigned"))

    assert ("coder-ws", "agent") in secrets.forgotten
    assert sink.texts("tok-late") == ["Pod ws-late created", "Normal Scheduled Pod/ws-late: assigned"]


async def test_events_wait_while_the_secret_is_missing(feed, sink, secrets):
    p = secret_token_pod("ws-wait")
    await feed(PODS, "ADDED", p)
    await feed(EVENTS, "ADDED", event(p, type="Normal", reason="Scheduled", message="assigned"))
    assert sink.lines == []

    secrets.data[("coder-ws", "agent")] = {"t": "tok-wait"}
    await feed(PODS, "MODIFIED", p)

    assert sink.texts("tok-wait") == ["Pod ws-wait created", "Normal Scheduled Pod/ws-wait: assigned"]


async def test_deleted_pod_is_not_retried(feed, sink, secrets):
    p = secret_token_pod("ws-gone")
    await feed(PODS, "ADDED", p)
    await feed(PODS, "DELETED", p)
    secrets.data[("coder-ws", "agent")] = {"t": "tok-gone"}
    await feed(EVENTS, "ADDED", event(p, type="Normal", reason="Killing", message="stopping"))

    assert secrets.forgotten == []
    assert sink.lines == []
