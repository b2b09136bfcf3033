"""The issue's scenarios against the real API server, the real program and the fake Coder.

The test plays kubelet and controllers: it creates pods, workloads and events and patches
pod status and event counts; `logstream-kube` runs as a subprocess and the fake Coder
records what each agent token received.
"""

from __future__ import annotations

import uuid

from tests.integration.harness import wait_for
from tests.support.objects import container, event, pod, replicaset

QUOTA = (
    'Error creating: pods "ws-gamma-x" is forbidden: exceeded quota: team-quota, '
    "requested: limits.memory=4Gi, used: limits.memory=14Gi, limited: limits.memory=16Gi"
)


def new_token(fake_coder) -> str:
    token = str(uuid.uuid4())
    fake_coder.add_agent(token)
    return token


def test_quota_denial_repeats_reach_the_replicasets_agent(namespace, objects, fake_coder, start_controller):
    token = new_token(fake_coder)
    start_controller("-n", namespace)
    rs = objects.create(replicaset("ws-gamma", namespace=namespace, token=token))
    denial = objects.create(event(rs, reason="FailedCreate", message=QUOTA))
    wait_for(lambda: len(fake_coder.lines(token)) >= 2, what="queued and denial lines")

    objects.patch(denial, {"count": 7, "message": "(combined from similar events): " + QUOTA})
    lines = wait_for(lambda: (found := fake_coder.lines(token)) and len(found) >= 3 and found, what="repeat line")

    assert lines[0]["output"] == "ReplicaSet ws-gamma is creating a pod for this workspace"
    assert lines[1]["level"] == "error" and "exceeded quota" in lines[1]["output"]
    assert lines[2]["level"] == "error" and lines[2]["output"].endswith("(x7)")
    assert len(lines) == 3


def test_missing_image_lines_in_order_without_repeats(namespace, objects, fake_coder, start_controller):
    token = new_token(fake_coder)
    start_controller("-n", namespace)
    p = objects.create(pod("ws-alpha", namespace=namespace, token=token))
    image = '"registry.example.com/dev/base:missing"'
    objects.create(event(p, type="Normal", reason="Pulling", message=f"Pulling image {image}", container_name="dev"))
    objects.create(event(p, reason="Failed", message=f"Failed to pull image {image}: not found", container_name="dev"))
    backoff = objects.create(event(p, type="Normal", reason="BackOff", message=f"Back-off pulling image {image}", container_name="dev"))
    wait_for(lambda: len(fake_coder.lines(token)) >= 4, what="first four lines")
    for count in range(2, 6):
        objects.patch(backoff, {"count": count})
        wait_for(lambda: fake_coder.texts(token)[-1].endswith(f"(x{count})"), what=f"BackOff (x{count})")
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": f"Back-off pulling image {image}"}}
    status = {"name": "dev", "ready": False, "restartCount": 0, "image": "img", "imageID": "", "state": waiting}
    objects.patch(p, {"status": {"containerStatuses": [status]}}, subresource="status")
    texts = wait_for(lambda: (t := fake_coder.texts(token)) and "ImagePullBackOff" in t[-1] and t, what="waiting line")

    assert texts[0] == "Pod ws-alpha created"
    assert [t.split(" ")[1] for t in texts[1:4]] == ["Pulling", "Failed", "BackOff"]
    assert [t.rsplit(" ", 1)[1] for t in texts[4:8]] == ["(x2)", "(x3)", "(x4)", "(x5)"]
    assert texts[8].startswith("Container dev is waiting: ImagePullBackOff")
    assert len(texts) == 9 and len(set(texts)) == 9


def test_same_name_in_two_namespaces_reaches_only_its_own_agent(kube_admin, objects, fake_coder, start_controller, namespace):
    other = namespace + "-b"
    kube_admin.create("/api/v1/namespaces", {"metadata": {"name": other}})
    first_token, second_token = new_token(fake_coder), new_token(fake_coder)
    start_controller("-n", f"{namespace},{other}")
    first = objects.create(pod("ws", namespace=namespace, token=first_token))
    objects.create(pod("ws", namespace=other, token=second_token))
    objects.create(event(first, reason="FailedScheduling", message="0/3 nodes are available: 3 Insufficient cpu."))

    wait_for(lambda: any("FailedScheduling" in t for t in fake_coder.texts(first_token)), what="event line")
    wait_for(lambda: fake_coder.texts(second_token) == ["Pod ws created"], what="second pod line")
    assert not any("FailedScheduling" in t for t in fake_coder.texts(second_token))


def test_oom_kill_without_event_is_one_warning(namespace, objects, fake_coder, start_controller):
    token = new_token(fake_coder)
    start_controller("-n", namespace)
    p = objects.create(pod("ws-epsilon-0", namespace=namespace, token=token))
    wait_for(lambda: fake_coder.texts(token) == ["Pod ws-epsilon-0 created"], what="created line")
    oom = {"reason": "OOMKilled", "exitCode": 137, "startedAt": "2026-01-01T10:00:00Z", "finishedAt": "2026-01-01T10:01:12Z"}
    status = {"name": "dev", "ready": True, "restartCount": 1, "image": "img", "imageID": "",
              "state": {"running": {"startedAt": "2026-01-01T10:01:13Z"}}, "lastState": {"terminated": oom}}
    objects.patch(p, {"status": {"phase": "Running", "containerStatuses": [status]}}, subresource="status")
    lines = wait_for(lambda: (found := fake_coder.lines(token)) and len(found) >= 2 and found, what="OOM line")
    # A later unrelated status change must not repeat it.
    objects.patch(p, {"status": {"message": "still running"}}, subresource="status")
    marker = objects.create(event(p, type="Normal", reason="Started", message="Started container dev"))
    wait_for(lambda: "Started" in fake_coder.texts(token)[-1], what="marker event")

    oom_lines = [line for line in fake_coder.lines(token) if "OOMKilled" in line["output"]]
    assert len(oom_lines) == 1
    assert oom_lines[0]["level"] == "warn"
    for part in ("dev", "OOMKilled", "137", "restart count 1"):
        assert part in oom_lines[0]["output"]
    assert marker["reason"] == "Started" and lines[1]["output"] == oom_lines[0]["output"]


def test_event_for_a_replicaset_that_existed_before_start_is_forwarded(namespace, objects, fake_coder, start_controller):
    token = new_token(fake_coder)
    rs = objects.create(replicaset("ws-delta", namespace=namespace, token=token))
    objects.create(event(rs, reason="FailedCreate", message="old: " + QUOTA))
    start_controller("-n", namespace)
    objects.create(event(rs, reason="FailedCreate", message="new: " + QUOTA))

    texts = wait_for(lambda: fake_coder.texts(token), what="the new event")
    assert len(texts) == 1 and "new: Error creating" in texts[0]


def test_token_in_init_container_env_from_secret(namespace, objects, fake_coder, start_controller):
    token = new_token(fake_coder)
    objects.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "agent", "namespace": namespace},
                    "stringData": {"CODER_AGENT_TOKEN": token}})
    start_controller("-n", namespace)
    init = container("init", envFrom=[{"secretRef": {"name": "agent"}}])
    p = objects.create(pod("ws-init", namespace=namespace, init_containers=[init], containers=[container()]))
    objects.create(event(p, type="Normal", reason="Scheduled", message="Successfully assigned to node-a"))

    wait_for(lambda: len(fake_coder.texts(token)) == 2, what="two lines")
    assert fake_coder.texts(token)[1] == "Normal Scheduled Pod/ws-init: Successfully assigned to node-a"


def test_token_file_backed_by_a_secret_volume_item(namespace, objects, fake_coder, start_controller):
    token = new_token(fake_coder)
    objects.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "agent-files", "namespace": namespace},
                    "stringData": {"agent-token": token, "unrelated": "x"}})
    start_controller("-n", namespace)
    dev = container(env=[{"name": "CODER_AGENT_TOKEN_FILE", "value": "/run/coder/token"}],
                    volumeMounts=[{"name": "coder", "mountPath": "/run/coder", "readOnly": True}])
    volume = {"name": "coder", "secret": {"secretName": "agent-files", "items": [{"key": "agent-token", "path": "token"}]}}
    p = objects.create(pod("ws-file", namespace=namespace, containers=[dev], volumes=[volume]))
    objects.create(event(p, reason="FailedMount", message='MountVolume.SetUp failed for volume "home" : secret "home" not found'))

    texts = wait_for(lambda: len(fake_coder.texts(token)) == 2 and fake_coder.texts(token), what="two lines")
    assert texts[0] == "Pod ws-file created" and "FailedMount" in texts[1]
    assert fake_coder.lines(token)[1]["level"] == "error"


def test_pod_deletion_is_announced_and_releases_the_agent(namespace, objects, fake_coder, start_controller):
    token = new_token(fake_coder)
    controller = start_controller("-n", namespace)
    p = objects.create(pod("ws-gone", namespace=namespace, token=token))
    wait_for(lambda: fake_coder.texts(token) == ["Pod ws-gone created"], what="created line")
    objects.delete(p)

    wait_for(lambda: fake_coder.texts(token)[-1:] == ["Pod ws-gone deleted"], what="deleted line")
    wait_for(lambda: controller.metric("coder_logstream_agents_active") == 0, what="agent released")


def statefulset(name: str, namespace: str, token: str) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"serviceName": name, "replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [container(env=[{"name": "CODER_AGENT_TOKEN", "value": token}])]}}},
    }


def job(name: str, namespace: str, token: str) -> dict:
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container(env=[{"name": "CODER_AGENT_TOKEN", "value": token}])]}}},
    }


def test_statefulset_and_job_denials_reach_their_agents(namespace, objects, fake_coder, start_controller):
    sts_token, job_token = new_token(fake_coder), new_token(fake_coder)
    start_controller("-n", namespace)
    sts = objects.create(statefulset("ws-sts", namespace, sts_token))
    batch = objects.create(job("ws-job", namespace, job_token))
    objects.create(event(sts, reason="FailedCreate", message='create Pod ws-sts-0 in StatefulSet ws-sts failed error: pods "ws-sts-0" is forbidden: exceeded quota: q'))
    objects.create(event(batch, reason="FailedCreate", message='Error creating: pods "ws-job-x" is forbidden: exceeded quota: q'))

    sts_lines = wait_for(lambda: (found := fake_coder.lines(sts_token)) and len(found) == 2 and found, what="StatefulSet lines")
    job_lines = wait_for(lambda: (found := fake_coder.lines(job_token)) and len(found) == 2 and found, what="Job lines")
    assert sts_lines[0]["output"] == "StatefulSet ws-sts is creating a pod for this workspace"
    assert job_lines[0]["output"] == "Job ws-job is creating a pod for this workspace"
    assert sts_lines[1]["level"] == job_lines[1]["level"] == "error"


def test_label_selector_limits_workloads_but_not_events(namespace, objects, fake_coder, start_controller):
    token, ignored = new_token(fake_coder), new_token(fake_coder)
    start_controller("-n", namespace, "-l", "com.coder.resource=true")
    chosen = pod("ws-chosen", namespace=namespace, token=token, labels={"com.coder.resource": "true"})
    other = pod("ws-other", namespace=namespace, token=ignored)
    chosen = objects.create(chosen)
    other = objects.create(other)
    # The unselected pod's event goes first: had it been routed, it would be there by the
    # time the selected pod's lines arrive.
    objects.create(event(other, reason="BackOff", message="Back-off restarting failed container dev"))
    objects.create(event(chosen, reason="BackOff", message="Back-off restarting failed container dev"))

    texts = wait_for(lambda: len(fake_coder.texts(token)) == 2 and fake_coder.texts(token), what="chosen pod lines")
    assert "BackOff" in texts[1]
    assert fake_coder.texts(ignored) == []


def test_token_secret_created_after_its_pod(namespace, objects, fake_coder, start_controller):
    token = new_token(fake_coder)
    controller = start_controller("-n", namespace)
    env = [{"name": "CODER_AGENT_TOKEN", "valueFrom": {"secretKeyRef": {"name": "agent-late", "key": "token"}}}]
    p = objects.create(pod("ws-late", namespace=namespace, containers=[container(env=env)]))
    wait_for(lambda: "agent token secret not found yet" in controller.log_text(), what="the missing secret noticed")

    objects.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "agent-late", "namespace": namespace},
                    "stringData": {"token": token}})
    objects.create(event(p, type="Normal", reason="Scheduled", message="Successfully assigned to node-a"))

    wait_for(lambda: fake_coder.texts(token) == ["Pod ws-late created", "Normal Scheduled Pod/ws-late: Successfully assigned to node-a"],
             what="the created line and the event")


def test_event_for_a_replaced_pod_does_not_reach_its_successor(namespace, objects, fake_coder, start_controller):
    # A StatefulSet's pod keeps its name across restarts, so only the uid differs.
    old_token, new_token_ = new_token(fake_coder), new_token(fake_coder)
    start_controller("-n", namespace)
    old = objects.create(pod("ws-0", namespace=namespace, token=old_token))
    wait_for(lambda: fake_coder.texts(old_token) == ["Pod ws-0 created"], what="the first pod tracked")
    objects.delete(old)
    wait_for(lambda: fake_coder.texts(old_token)[-1:] == ["Pod ws-0 deleted"], what="the first pod deleted")

    new = objects.create(pod("ws-0", namespace=namespace, token=new_token_))
    objects.create(event(old, type="Normal", reason="Killing", message="Stopping container dev"))
    objects.create(event(new, type="Normal", reason="Scheduled", message="Successfully assigned to node-a"))

    wait_for(lambda: len(fake_coder.texts(new_token_)) == 2, what="the second pod's lines")
    assert fake_coder.texts(new_token_) == ["Pod ws-0 created", "Normal Scheduled Pod/ws-0: Successfully assigned to node-a"]
