"""The issue's scenarios, fed to the correlator as watch changes on dict fixtures."""

from __future__ import annotations

from logstream.kube.resources import EVENTS, PODS, REPLICASETS
from logstream.lines import Level
from tests.support.objects import (
    container,
    event,
    owner_ref,
    pod,
    replicaset,
    with_container_status,
    with_count,
)

QUOTA = (
    'Error creating: pods "ws-gamma-x" is forbidden: exceeded quota: team-quota, '
    "requested: limits.memory=4Gi, used: limits.memory=14Gi, limited: limits.memory=16Gi"
)


async def test_quota_denial_on_a_replicaset_is_an_error_with_repeats_counted(feed, sink):
    rs = replicaset("ws-gamma", token="tok-gamma")
    await feed(REPLICASETS, "ADDED", rs)
    denial = event(rs, reason="FailedCreate", message=QUOTA)
    await feed(EVENTS, "ADDED", denial)
    combined = with_count(denial, 7, "(combined from similar events): " + QUOTA)
    await feed(EVENTS, "MODIFIED", combined)

    lines = [line for line in sink.lines if line.token == "tok-gamma"]
    assert [line.text for line in lines][0] == "ReplicaSet ws-gamma is creating a pod for this workspace"
    assert lines[1].level is Level.ERROR and "exceeded quota" in lines[1].text
    assert lines[2].level is Level.ERROR
    assert lines[2].text.endswith("(x7)") and "(combined from similar events)" in lines[2].text
    assert len(lines) == 3


async def test_missing_image_lines_arrive_in_order_and_never_twice(feed, sink):
    p = pod("ws-alpha", token="tok-alpha")
    await feed(PODS, "ADDED", p)
    pulling = event(p, type="Normal", reason="Pulling", message='Pulling image "registry.example.com/dev/base:missing"', container_name="dev")
    failed = event(p, reason="Failed", message='Failed to pull image "registry.example.com/dev/base:missing": manifest unknown', container_name="dev")
    err = event(p, reason="Failed", message="Error: ErrImagePull", container_name="dev")
    backoff = event(p, type="Normal", reason="BackOff", message='Back-off pulling image "registry.example.com/dev/base:missing"', container_name="dev")
    for ev in (pulling, failed, err, backoff):
        await feed(EVENTS, "ADDED", ev)
    for count in range(2, 6):
        await feed(EVENTS, "MODIFIED", with_count(backoff, count))
        # A reconnect replays the same version: it must not produce a line.
        await feed(EVENTS, "ADDED", with_count(backoff, count))
    waiting = {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "registry.example.com/dev/base:missing"'}
    await feed(PODS, "MODIFIED", with_container_status(p, waiting=waiting))
    await feed(PODS, "MODIFIED", with_container_status(p, waiting={"reason": "ErrImagePull"}))
    await feed(PODS, "MODIFIED", with_container_status(p, waiting=waiting))

    texts = sink.texts("tok-alpha")
    assert texts[0] == "Pod ws-alpha created"
    assert texts[1].startswith("Normal Pulling Pod/ws-alpha container dev:")
    assert "manifest unknown" in texts[2]
    assert texts[3].endswith("Error: ErrImagePull")
    assert [t.rsplit(" ", 1)[-1] for t in texts[4:9]] == ['"registry.example.com/dev/base:missing"', "(x2)", "(x3)", "(x4)", "(x5)"]
    assert texts[9].startswith("Container dev is waiting: ImagePullBackOff")
    assert texts[10].startswith("Container dev is waiting: ErrImagePull")
    assert len(texts) == 11 and len(set(texts)) == 11
    levels = [line.level for line in sink.lines]
    assert levels[2] is Level.ERROR  # the image does not exist: it will never start


async def test_same_pod_name_in_two_namespaces_routes_by_uid(feed, sink):
    first = pod("ws", namespace="team-1", token="tok-team-1")
    second = pod("ws", namespace="team-2", token="tok-team-2")
    await feed(PODS, "ADDED", first)
    await feed(PODS, "ADDED", second)
    await feed(EVENTS, "ADDED", event(first, reason="FailedScheduling", message="0/3 nodes are available"))

    assert any("FailedScheduling" in t for t in sink.texts("tok-team-1"))
    assert not any("FailedScheduling" in t for t in sink.texts("tok-team-2"))


async def test_oom_kill_without_an_event_is_one_warning(feed, sink):
    p = pod("ws-epsilon-0", token="tok-eps")
    await feed(PODS, "ADDED", p, initial=True)
    oom = {"reason": "OOMKilled", "exitCode": 137, "startedAt": "2026-01-01T10:00:00Z", "finishedAt": "2026-01-01T10:01:12Z"}
    updated = with_container_status(p, restarts=1, last_terminated=oom, ready=True)
    await feed(PODS, "MODIFIED", updated)
    await feed(PODS, "MODIFIED", updated)

    assert len(sink.lines) == 1
    line = sink.lines[0]
    assert line.level is Level.WARN
    for part in ("dev", "OOMKilled", "137", "restart count 1"):
        assert part in line.text


async def test_event_for_a_replicaset_that_existed_at_startup_is_forwarded(feed, sink):
    rs = replicaset("ws-delta", token="tok-delta")
    await feed(REPLICASETS, "ADDED", rs, initial=True)
    await feed(REPLICASETS, "MODIFIED", rs)
    assert sink.lines == []

    await feed(EVENTS, "ADDED", event(rs, reason="FailedCreate", message=QUOTA))
    assert len(sink.texts("tok-delta")) == 1


async def test_token_in_init_container_env_from_secret_ref(feed, sink, secrets):
    secrets.data[("coder-ws", "agent-secret")] = {"CODER_AGENT_TOKEN": "tok-init"}
    init = container("init", envFrom=[{"secretRef": {"name": "agent-secret"}}])
    p = pod("ws-init", init_containers=[init])
    await feed(PODS, "ADDED", p)
    await feed(EVENTS, "ADDED", event(p, type="Normal", reason="Scheduled", message="Successfully assigned"))

    assert sink.texts("tok-init") == ["Pod ws-init created", "Normal Scheduled Pod/ws-init: Successfully assigned"]


async def test_token_file_on_a_secret_volume_with_items(feed, sink, secrets):
    secrets.data[("coder-ws", "agent-files")] = {"agent-token": "tok-file", "other": "nope"}
    dev = container(
        env=[{"name": "CODER_AGENT_TOKEN_FILE", "value": "/run/coder/token"}],
        volumeMounts=[{"name": "coder", "mountPath": "/run/coder", "readOnly": True}],
    )
    volume = {"name": "coder", "secret": {"secretName": "agent-files", "items": [{"key": "agent-token", "path": "token"}]}}
    p = pod("ws-file", containers=[dev], volumes=[volume])
    await feed(PODS, "ADDED", p)

    assert sink.texts("tok-file") == ["Pod ws-file created"]
    assert sink.texts("nope") == []


async def test_pod_without_its_own_token_uses_its_tracked_owner(feed, sink):
    rs = replicaset("ws-owner", token="tok-owner")
    await feed(REPLICASETS, "ADDED", rs, initial=True)
    child = pod("ws-owner-abc", owner=owner_ref(rs))
    child["spec"]["containers"][0].pop("env", None)
    await feed(PODS, "ADDED", child)

    assert sink.texts("tok-owner") == ["Pod ws-owner-abc created"]
