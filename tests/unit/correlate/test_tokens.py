"""Where a pod spec keeps its agent token."""

from __future__ import annotations

from logstream.correlate.tokens import ANNOTATION, InlineToken, SecretKeyToken, claim_names, token_sources
from tests.support.objects import container


def spec(*containers, volumes=None, init=None):
    body = {"containers": list(containers)}
    if volumes:
        body["volumes"] = volumes
    if init:
        body["initContainers"] = init
    return body


def test_env_value_in_a_container():
    found = token_sources(spec(container(env=[{"name": "CODER_AGENT_TOKEN", "value": " abc "}])))

    assert found == [InlineToken("abc")]


def test_secret_key_ref_keeps_optional_flag():
    env = [{"name": "CODER_AGENT_TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": True}}}]

    assert token_sources(spec(container(env=env))) == [SecretKeyToken("s", "k", True, "env")]


def test_env_wins_over_env_from_in_one_container():
    dev = container(env=[{"name": "CODER_AGENT_TOKEN", "value": "inline"}], envFrom=[{"secretRef": {"name": "s"}}])

    assert token_sources(spec(dev)) == [InlineToken("inline")]


def test_env_from_prefix_selects_the_key():
    dev = container(envFrom=[{"prefix": "CODER_", "secretRef": {"name": "s"}}])
    other = container("b", envFrom=[{"prefix": "OTHER_", "secretRef": {"name": "t"}}])

    assert token_sources(spec(dev, other)) == [SecretKeyToken("s", "AGENT_TOKEN", False, "envFrom")]


def test_same_token_in_two_containers_counts_once():
    env = [{"name": "CODER_AGENT_TOKEN", "value": "same"}]

    assert token_sources(spec(container("a", env=env), container("b", env=env))) == [InlineToken("same")]


def test_init_container_comes_first():
    init = [container("init", env=[{"name": "CODER_AGENT_TOKEN", "value": "first"}])]
    dev = container(env=[{"name": "CODER_AGENT_TOKEN", "value": "second"}])

    assert token_sources(spec(dev, init=init)) == [InlineToken("first"), InlineToken("second")]


def test_token_file_through_a_projected_volume():
    dev = container(
        env=[{"name": "CODER_AGENT_TOKEN_FILE", "value": "/var/run/coder/agent/token"}],
        volumeMounts=[{"name": "other", "mountPath": "/var/run"}, {"name": "agent", "mountPath": "/var/run/coder"}],
    )
    volumes = [
        {"name": "other", "emptyDir": {}},
        {"name": "agent", "projected": {"sources": [
            {"configMap": {"name": "cm"}},
            {"secret": {"name": "agent-secret", "items": [{"key": "tok", "path": "agent/token"}]}},
        ]}},
    ]

    assert token_sources(spec(dev, volumes=volumes)) == [SecretKeyToken("agent-secret", "tok", False, "file")]


def test_token_file_through_a_sub_path_mount():
    dev = container(
        env=[{"name": "CODER_AGENT_TOKEN_FILE", "value": "/etc/coder-token"}],
        volumeMounts=[{"name": "agent", "mountPath": "/etc/coder-token", "subPath": "token"}],
    )
    volumes = [{"name": "agent", "secret": {"secretName": "agent-secret"}}]

    assert token_sources(spec(dev, volumes=volumes)) == [SecretKeyToken("agent-secret", "token", False, "file")]


def test_token_file_not_backed_by_a_secret_is_ignored():
    dev = container(
        env=[{"name": "CODER_AGENT_TOKEN_FILE", "value": "/run/coder/token"}],
        volumeMounts=[{"name": "agent", "mountPath": "/run/coder"}],
    )

    assert token_sources(spec(dev, volumes=[{"name": "agent", "emptyDir": {}}])) == []


def test_annotation_names_secret_and_key():
    found = token_sources(spec(container()), {ANNOTATION: "agent-secret/agent-token"})
    default_key = token_sources(spec(container()), {ANNOTATION: "agent-secret"})

    assert found == [SecretKeyToken("agent-secret", "agent-token", False, "annotation")]
    assert default_key == [SecretKeyToken("agent-secret", "CODER_AGENT_TOKEN", False, "annotation")]


def test_malformed_specs_yield_nothing():
    assert token_sources(None) == []
    assert token_sources({"containers": "nope"}) == []
    assert token_sources({"containers": [None, {"env": [None, {"name": "CODER_AGENT_TOKEN"}]}]}) == []


def test_claim_names_of_mounted_claims():
    volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "ws-home"}}, {"name": "tmp", "emptyDir": {}}]

    assert claim_names(spec(container(), volumes=volumes)) == ("ws-home",)
