"""Least privilege: RBAC denials are warnings with a next step, never a crash."""

from __future__ import annotations

import uuid

from tests.integration.fixtures import READ_RULES, SECRET_RULE, service_account_kubeconfig
from tests.integration.harness import wait_for
from tests.support.objects import container, event, pod, replicaset


def test_forbidden_secret_is_a_warning_naming_the_pod(cluster, kube_admin, namespace, objects, fake_coder, start_controller, tmp_path):
    kubeconfig = service_account_kubeconfig(
        cluster, kube_admin, namespace=namespace, name="no-secrets", rules=READ_RULES, path=tmp_path / "kc"
    )
    inline_token = str(uuid.uuid4())
    fake_coder.add_agent(inline_token)
    controller = start_controller("-n", namespace, kubeconfig=kubeconfig)
    secret_ref = [{"name": "CODER_AGENT_TOKEN", "valueFrom": {"secretKeyRef": {"name": "agent", "key": "token"}}}]
    objects.create(pod("ws-secret", namespace=namespace, containers=[container(env=secret_ref)]))
    objects.create(pod("ws-inline", namespace=namespace, token=inline_token))

    wait_for(lambda: fake_coder.texts(inline_token) == ["Pod ws-inline created"], what="inline pod line")
    log = wait_for(lambda: "ws-secret" in controller.log_text() and controller.log_text(), what="warning")
    warning = next(line for line in log.splitlines() if "ws-secret" in line and "WARN" in line)
    assert "not allowed to read the agent token secret" in warning
    assert f"{namespace}/agent" in warning and "grant get on secrets" in warning
    assert controller.metric("coder_logstream_watch_restarts_total") == 0


def test_namespace_scoped_rbac_with_namespaces_flag(cluster, kube_admin, namespace, objects, fake_coder, start_controller, tmp_path):
    kubeconfig = service_account_kubeconfig(
        cluster, kube_admin, namespace=namespace, name="scoped", rules=[*READ_RULES, SECRET_RULE], path=tmp_path / "kc"
    )
    token = str(uuid.uuid4())
    fake_coder.add_agent(token)
    start_controller("-n", namespace, kubeconfig=kubeconfig)
    rs = objects.create(replicaset("ws-scoped", namespace=namespace, token=token))
    objects.create(event(rs, reason="FailedCreate", message="pods is forbidden: exceeded quota: q"))

    texts = wait_for(lambda: len(fake_coder.texts(token)) == 2 and fake_coder.texts(token), what="two lines")
    assert "FailedCreate" in texts[1]


def test_cluster_wide_without_cluster_rights_keeps_retrying_with_a_hint(cluster, kube_admin, namespace, start_controller, tmp_path):
    kubeconfig = service_account_kubeconfig(
        cluster, kube_admin, namespace=namespace, name="scoped", rules=READ_RULES, path=tmp_path / "kc"
    )
    controller = start_controller(kubeconfig=kubeconfig, wait_ready=False)

    log = wait_for(lambda: "watch failed" in controller.log_text() and controller.log_text(), what="watch failure")
    assert "grant list and watch" in log and "--namespaces" in log
    wait_for(lambda: controller.metric("coder_logstream_watch_restarts_total", cause="forbidden") >= 2, what="retries")
    assert controller.stop() == 0


def test_pod_field_selector_leaves_replicaset_watch_intact(namespace, objects, fake_coder, start_controller):
    token, pod_token = str(uuid.uuid4()), str(uuid.uuid4())
    fake_coder.add_agent(token)
    fake_coder.add_agent(pod_token)
    # `status.phase` exists only for pods: sent to the ReplicaSet list it would be a 400.
    controller = start_controller("-n", namespace, "-f", "status.phase!=Succeeded")
    rs = objects.create(replicaset("ws-sel", namespace=namespace, token=token))
    objects.create(event(rs, reason="FailedCreate", message="exceeded quota: q"))
    objects.create(pod("ws-sel-pod", namespace=namespace, token=pod_token))

    wait_for(lambda: len(fake_coder.texts(token)) == 2, what="ReplicaSet lines")
    wait_for(lambda: fake_coder.texts(pod_token) == ["Pod ws-sel-pod created"], what="pod line")
    assert controller.metric("coder_logstream_watch_restarts_total") == 0
