"""The Coder client against the fake Coder and against servers that are not Coder."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator
from email.utils import format_datetime
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from logstream.deliver.coder import (
    LOG_SOURCE_DISPLAY_NAME,
    LOG_SOURCE_ICON,
    LOG_SOURCE_ID,
    LOGS_PATH,
    CoderClient,
    parse_retry_after,
)
from logstream.deliver.errors import (
    CoderConnectionError,
    CoderError,
    CoderRouteNotFound,
    CoderStatusError,
    NotCoderServerError,
)
from logstream.lines import MAX_LINE_CHARS, TRUNCATION_MARKER, Level
from logstream.ops.metrics import Metrics
from tests.support.fake_coder import FakeCoder

from .conftest import new_token
from .helpers import line, sample


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def not_coder() -> AsyncIterator[tuple[str, dict[str, web.Response]]]:
    """A web server on 127.0.0.1 whose /api/v2/buildinfo answer the test chooses."""
    answers: dict[str, web.Response] = {}

    async def buildinfo(request: web.Request) -> web.Response:
        return answers.get("buildinfo") or web.Response(status=404, text="404 page not found")

    app = web.Application()
    app.router.add_get("/api/v2/buildinfo", buildinfo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", answers
    await runner.cleanup()


async def test_buildinfo_returns_server_version(coder: FakeCoder, client: CoderClient) -> None:
    version = await client.fetch_server_version()

    assert version == coder.version
    assert client.server_version == coder.version


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (404, "404 page not found", "text/plain"),
        (200, "<html><body>Welcome to nginx!</body></html>", "text/html"),
        (200, '{"name": "some other service"}', "application/json"),
        (200, '["v2.31.0"]', "application/json"),
        (401, '{"error": "login required"}', "application/json"),
    ],
)
async def test_buildinfo_of_other_server_raises_not_coder(
    not_coder: tuple[str, dict[str, web.Response]], status: int, body: str, content_type: str
) -> None:
    url, answers = not_coder
    answers["buildinfo"] = web.Response(status=status, text=body, content_type=content_type)

    async with CoderClient(url, timeout_seconds=5.0) as client:
        with pytest.raises(NotCoderServerError) as raised:
            await client.fetch_server_version()

    assert url in str(raised.value)
    assert "--coder-url" in str(raised.value)


async def test_buildinfo_redirect_names_target(
    not_coder: tuple[str, dict[str, web.Response]],
) -> None:
    url, answers = not_coder
    answers["buildinfo"] = web.Response(status=301, headers={"Location": "https://127.0.0.1/x"})

    async with CoderClient(url, timeout_seconds=5.0) as client:
        with pytest.raises(NotCoderServerError, match="https://127.0.0.1/x"):
            await client.fetch_server_version()


async def test_buildinfo_5xx_raises_status_error(coder: FakeCoder, client: CoderClient) -> None:
    coder.inject(status=503, times=1)

    with pytest.raises(CoderStatusError) as raised:
        await client.fetch_server_version()

    assert raised.value.status == 503


async def test_unreachable_server_raises_connection_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    metrics = Metrics()

    async with CoderClient(url, timeout_seconds=2.0, metrics=metrics) as client:
        with pytest.raises(CoderConnectionError) as raised:
            await client.fetch_server_version()

    assert url in str(raised.value)
    assert "ConnectError" in str(raised.value)
    assert sample(metrics.registry, "coder_logstream_requests_total", method="GET", status="error") == 1


async def test_request_timeout_raises_connection_error(coder: FakeCoder) -> None:
    coder.inject(delay_seconds=1.0, drop_connection=True, times=1)

    async with CoderClient(coder.url, timeout_seconds=0.2) as client:
        with pytest.raises(CoderConnectionError, match="Timeout"):
            await client.fetch_server_version()


async def test_register_and_patch_store_lines_under_source(
    coder: FakeCoder, client: CoderClient
) -> None:
    token = new_token()
    coder.add_agent(token)

    await client.register_log_source(token)
    await client.patch_logs(token, [line(token, "pulled", level=Level.DEBUG), line(token, "oom", level=Level.ERROR)])

    source = coder.log_sources(token)[LOG_SOURCE_ID]
    assert source["display_name"] == LOG_SOURCE_DISPLAY_NAME
    assert source["icon"] == LOG_SOURCE_ICON
    stored = coder.lines(token)
    assert [(s.output, s.level) for s in stored] == [("pulled", "debug"), ("oom", "error")]
    assert {s.source_id for s in stored} == {LOG_SOURCE_ID}


async def test_token_sent_in_session_header(coder: FakeCoder, client: CoderClient) -> None:
    token = new_token()
    coder.add_agent(token)

    await client.patch_logs(token, [line(token, "hello")])

    assert [r.token for r in coder.requests_for(path=LOGS_PATH)] == [token]


async def test_long_line_cut_with_visible_marker(coder: FakeCoder, client: CoderClient) -> None:
    token = new_token()
    coder.add_agent(token)

    await client.patch_logs(token, [line(token, "x" * 3000)])

    (stored,) = coder.texts(token)
    assert len(stored) == MAX_LINE_CHARS
    assert stored.endswith(TRUNCATION_MARKER)


async def test_rejected_patch_carries_message_and_detail(
    coder: FakeCoder, client: CoderClient
) -> None:
    token = new_token()

    with pytest.raises(CoderStatusError) as raised:
        await client.patch_logs(token, [line(token, "hello")])

    assert raised.value.status == 401
    assert raised.value.server_message == "Workspace agent not authorized."
    assert token not in str(raised.value)


async def test_429_carries_retry_after_seconds(coder: FakeCoder, client: CoderClient) -> None:
    token = new_token()
    coder.add_agent(token)
    coder.inject(status=429, retry_after="7", times=1)

    with pytest.raises(CoderStatusError) as raised:
        await client.patch_logs(token, [line(token, "hello")])

    assert raised.value.status == 429
    assert raised.value.retry_after_seconds == 7.0


def test_retry_after_parses_seconds_and_http_date() -> None:
    now = dt.datetime(2026, 1, 1, 10, 0, 0, tzinfo=dt.timezone.utc)
    later = format_datetime(now + dt.timedelta(seconds=90), usegmt=True)

    assert parse_retry_after("3", now=now) == 3.0
    assert parse_retry_after(later, now=now) == 90.0
    assert parse_retry_after(format_datetime(now - dt.timedelta(seconds=5), usegmt=True), now=now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-1") is None


async def test_missing_logs_route_names_server_version() -> None:
    async with FakeCoder(version="v2.99.0+gone", serve_log_routes=False) as coder:
        token = new_token()
        coder.add_agent(token)
        async with CoderClient(coder.url, timeout_seconds=5.0) as client:
            with pytest.raises(CoderRouteNotFound) as raised:
                await client.patch_logs(token, [line(token, "hello")])

    assert "v2.99.0+gone" in str(raised.value)
    assert LOGS_PATH in str(raised.value)


def write_test_ca_and_server_cert(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """Create a CA and a server certificate for 127.0.0.1 signed by it."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "logstream test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file = directory / "server.pem"
    cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_file = directory / "server.key"
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    return ca_file, server_context


async def test_tls_trusts_ca_from_ssl_cert_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_file, server_context = write_test_ca_and_server_cert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    async with FakeCoder(ssl_context=server_context) as coder:
        async with CoderClient(coder.url, timeout_seconds=5.0) as client:
            version = await client.fetch_server_version()

    assert coder.url.startswith("https://127.0.0.1:")
    assert version == coder.version


async def test_tls_rejects_certificate_of_unknown_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, server_context = write_test_ca_and_server_cert(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _ = write_test_ca_and_server_cert(other)
    monkeypatch.setenv("SSL_CERT_FILE", str(other_ca))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    async with FakeCoder(ssl_context=server_context) as coder:
        async with CoderClient(coder.url, timeout_seconds=5.0) as client:
            with pytest.raises(CoderConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.fetch_server_version()


async def test_http_proxy_variable_is_honoured(
    coder: FakeCoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake Coder plays the proxy: it answers the absolute-form request itself, so a
    # version comes back although the client's own URL has nothing listening.
    monkeypatch.setenv("HTTP_PROXY", coder.url)
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)

    async with CoderClient(f"http://127.0.0.1:{closed_port()}", timeout_seconds=5.0) as client:
        version = await client.fetch_server_version()

    assert version == coder.version


def test_unreadable_ssl_cert_file_raises_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing.pem"
    monkeypatch.setenv("SSL_CERT_FILE", str(missing))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    with pytest.raises(CoderError, match="SSL_CERT_FILE") as raised:
        CoderClient("https://127.0.0.1:1", timeout_seconds=1.0)

    assert str(missing) in str(raised.value)
