"""The fake Coder itself: it must respond as Coder does, or the other tests prove nothing."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fake_coder import (
    AGENT_LOG_LIMIT_BYTES,
    BUILDINFO_PATH,
    LOG_SOURCE_PATH,
    LOGS_PATH,
    FakeCoder,
)

from .conftest import new_token

REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
SOURCE_ID = "cabdacf8-7c90-425c-9815-cae3c75d1169"


def entry(output: str, level: str = "info") -> dict[str, str]:
    return {"created_at": "2026-01-01T10:00:00.123Z", "output": output, "level": level}


def logs_body(*entries: dict[str, str]) -> dict[str, Any]:
    return {"log_source_id": SOURCE_ID, "logs": list(entries)}


@pytest.fixture
async def http(coder: FakeCoder) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=coder.url, trust_env=False) as client:
        yield client


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, 'Cookie "coder_session_token" must be provided.'),
        ({"Coder-Session-Token": "not-a-uuid"}, "Workspace agent token invalid."),
        ({"Coder-Session-Token": "8b1f7f7e-55a4-4f0e-8a55-b9d0f1d6c5a1"}, "Workspace agent not authorized."),
    ],
)
async def test_bad_tokens_get_coder_401_bodies(
    http: httpx.AsyncClient, headers: dict[str, str], message: str
) -> None:
    response = await http.patch(LOGS_PATH, json=logs_body(entry("x")), headers=headers)

    assert response.status_code == 401
    assert response.json()["message"] == message


async def test_token_read_from_cookie_and_query(coder: FakeCoder, http: httpx.AsyncClient) -> None:
    token = new_token()
    coder.add_agent(token)

    by_query = await http.patch(LOGS_PATH, json=logs_body(entry("q")), params={"coder_session_token": token})
    by_cookie = await http.patch(
        LOGS_PATH, json=logs_body(entry("c")), headers={"Cookie": f"coder_session_token={token}"}
    )

    assert (by_query.status_code, by_cookie.status_code) == (200, 200)
    assert coder.texts(token) == ["q", "c"]


async def test_held_token_rejected_until_authorized(coder: FakeCoder, http: httpx.AsyncClient) -> None:
    token = new_token()
    coder.add_agent(token, held=True)
    headers = {"Coder-Session-Token": token}

    before = await http.patch(LOGS_PATH, json=logs_body(entry("x")), headers=headers)
    coder.authorize(token)
    after = await http.patch(LOGS_PATH, json=logs_body(entry("x")), headers=headers)

    assert (before.status_code, after.status_code) == (401, 200)


async def test_token_rejected_until_deadline(coder: FakeCoder, http: httpx.AsyncClient) -> None:
    token = new_token()
    coder.add_agent(token, unauthorized_seconds=0.3)
    headers = {"Coder-Session-Token": token}

    early = await http.patch(LOGS_PATH, json=logs_body(entry("x")), headers=headers)
    await asyncio.sleep(0.35)
    late = await http.patch(LOGS_PATH, json=logs_body(entry("x")), headers=headers)

    assert (early.status_code, late.status_code) == (401, 200)


async def test_log_source_201_echo_first_write_wins(coder: FakeCoder, http: httpx.AsyncClient) -> None:
    token = new_token()
    coder.add_agent(token)
    headers = {"Coder-Session-Token": token}

    first = await http.post(
        LOG_SOURCE_PATH, json={"id": SOURCE_ID, "display_name": "Kubernetes", "icon": "/icon/k8s.png"}, headers=headers
    )
    second = await http.post(
        LOG_SOURCE_PATH, json={"id": SOURCE_ID, "display_name": "Other", "icon": "/x.png"}, headers=headers
    )

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["display_name"] == "Kubernetes"
    assert second.json()["display_name"] == "Kubernetes"
    assert set(first.json()) == {"workspace_agent_id", "id", "created_at", "display_name", "icon"}


async def test_patch_returns_null_and_keeps_order(coder: FakeCoder, http: httpx.AsyncClient) -> None:
    token = new_token()
    coder.add_agent(token)
    headers = {"Coder-Session-Token": token}

    response = await http.patch(LOGS_PATH, json=logs_body(entry("a"), entry("b", "")), headers=headers)
    await http.patch(LOGS_PATH, json=logs_body(entry("c", "warn")), headers=headers)

    assert response.status_code == 200
    assert response.content == b"null"
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert [(s.output, s.level) for s in coder.lines(token)] == [("a", "info"), ("b", "info"), ("c", "warn")]
    assert [s.order for s in coder.lines(token)] == sorted(s.order for s in coder.lines(token))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (logs_body(entry("ok"), entry("bad", "WARN")), "Invalid log level provided."),
        (logs_body(entry("ok"), entry("bad", "warning")), "Invalid log level provided."),
        (logs_body(), "No logs provided."),
        ({"log_source_id": SOURCE_ID}, "No logs provided."),
        (logs_body({"created_at": "yesterday", "output": "x", "level": "info"}), "Request body must be valid JSON."),
    ],
)
async def test_invalid_batch_gets_400_and_stores_nothing(
    coder: FakeCoder, http: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    token = new_token()
    coder.add_agent(token)

    response = await http.patch(LOGS_PATH, json=body, headers={"Coder-Session-Token": token})

    assert response.status_code == 400
    assert response.json()["message"] == message
    assert coder.lines(token) == []


async def test_malformed_json_gets_400(coder: FakeCoder, http: httpx.AsyncClient) -> None:
    token = new_token()
    coder.add_agent(token)

    response = await http.patch(LOGS_PATH, content=b"{not json", headers={"Coder-Session-Token": token})

    assert response.status_code == 400


async def test_output_cut_to_1024_characters(coder: FakeCoder, http: httpx.AsyncClient) -> None:
    token = new_token()
    coder.add_agent(token)

    await http.patch(LOGS_PATH, json=logs_body(entry("é" * 2000)), headers={"Coder-Session-Token": token})

    assert coder.texts(token) == ["é" * 1024]


async def test_budget_exceeded_gets_413_then_smaller_batch_fits(
    coder: FakeCoder, http: httpx.AsyncClient
) -> None:
    token = new_token()
    coder.add_agent(token)
    headers = {"Coder-Session-Token": token}
    # 1000 lines of 1000 bytes use 1,000,000 of the 1,048,576-byte budget.
    big = logs_body(*(entry("x" * 1000) for _ in range(1000)))

    filled = await http.patch(LOGS_PATH, json=big, headers=headers)
    too_much = await http.patch(LOGS_PATH, json=logs_body(entry("y" * 50_000)), headers=headers)
    fits = await http.patch(LOGS_PATH, json=logs_body(entry("z" * 40_000)), headers=headers)

    assert filled.status_code == 200
    assert too_much.status_code == 413
    assert too_much.json()["message"] == "Logs limit exceeded"
    assert coder.overflowed(token)
    assert fits.status_code == 200
    assert len(coder.lines(token)) == 1001
    assert AGENT_LOG_LIMIT_BYTES == 1024 * 1024


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/api/v2/workspaceagents/me/startup-logs"),
        ("GET", "/api/v2/nothing-here"),
        ("GET", "/"),
    ],
)
async def test_unknown_routes_get_404(http: httpx.AsyncClient, method: str, path: str) -> None:
    response = await http.request(method, path)

    assert response.status_code == 404
    assert response.json() == {"message": "Route not found."}


async def test_buildinfo_needs_no_token(coder: FakeCoder, http: httpx.AsyncClient) -> None:
    response = await http.get(BUILDINFO_PATH)

    assert response.status_code == 200
    assert response.json()["version"] == coder.version


async def test_fault_every_nth_request(coder: FakeCoder, http: httpx.AsyncClient) -> None:
    coder.inject(status=503, every=3, retry_after="2")

    responses = [await http.get(BUILDINFO_PATH) for _ in range(7)]

    assert [a.status_code for a in responses] == [200, 200, 503, 200, 200, 503, 200]
    assert responses[2].headers["Retry-After"] == "2"


async def test_fault_delays_and_drops(coder: FakeCoder, http: httpx.AsyncClient) -> None:
    coder.inject(delay_seconds=0.2, drop_connection=True, times=1)

    started = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError):
        await http.get(BUILDINFO_PATH)
    waited = time.monotonic() - started
    after = await http.get(BUILDINFO_PATH)

    assert waited >= 0.2
    assert after.status_code == 200
    assert [r.status for r in coder.requests] == [None, 200]


async def test_standalone_process_with_control_api() -> None:
    token = new_token()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.fake_coder", "--port", "0", "--agent", token,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPOSITORY_ROOT,
    )
    try:
        assert process.stdout is not None
        url = (await asyncio.wait_for(process.stdout.readline(), timeout=10)).decode().strip()
        async with httpx.AsyncClient(base_url=url, trust_env=False) as http:
            other = new_token()
            added = await http.post("/_test/agents", json={"token": other, "held": True})
            held = await http.patch(LOGS_PATH, json=logs_body(entry("x")), headers={"Coder-Session-Token": other})
            await http.post("/_test/faults", json={"status": 500, "times": 1, "path": LOGS_PATH})
            faulted = await http.patch(LOGS_PATH, json=logs_body(entry("x")), headers={"Coder-Session-Token": token})
            stored = await http.patch(LOGS_PATH, json=logs_body(entry("hello", "warn")), headers={"Coder-Session-Token": token})
            lines = (await http.get("/_test/lines", params={"token": token})).json()
            requests = (await http.get("/_test/requests")).json()
    finally:
        process.terminate()
        code = await asyncio.wait_for(process.wait(), timeout=10)

    assert url.startswith("http://127.0.0.1:")
    assert added.status_code == 200
    assert held.status_code == 401
    assert faulted.status_code == 500
    assert stored.status_code == 200
    assert [(line["output"], line["level"]) for line in lines] == [("hello", "warn")]
    assert [r["status"] for r in requests] == [401, 500, 200]
    assert code == 0
