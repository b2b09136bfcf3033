"""Run a real Kubernetes control plane (etcd and kube-apiserver) for integration tests.

`TestCluster` starts etcd and kube-apiserver from the binaries that
`scripts/testbed.sh` builds. There is no kubelet, scheduler or controller manager:
the API server stores objects and serves watches, but nothing runs pods, creates
default service accounts or finishes namespace deletion.

Guarantees:
* Every listener binds 127.0.0.1 on a port that was free at start time.
* Each cluster gets its own temp dir (data, certificates, tokens, kubeconfigs, logs).
  `stop()` kills both process groups and removes that dir, unless `keep_workdir` is set.
* `start()` and `restart_apiserver()` return only after `/readyz` returns 200, and they
  raise `TestbedError` with the tail of the process log when startup fails.

`ExternalCluster` offers the same attributes for a cluster reached through a kubeconfig
(for example kind); its `restart_apiserver()` and `compact_etcd()` skip the test.

Certificates and keys are generated with the `cryptography` package.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "testbed.sh"
LOOPBACK = "127.0.0.1"

ADMIN_USER = "admin"
LIMITED_USER = "limited"

# Seconds. kube-apiserver v1.34 became ready about 3.5 s after start on a 2-core
# machine; the limit leaves room for slower or busier machines.
DEFAULT_START_TIMEOUT = 120.0
PROCESS_STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.2
LOG_TAIL_LINES = 40

# Startup attempts when a port chosen as free is taken before the process binds it.
PORT_ATTEMPTS = 3

_T = TypeVar("_T")


class TestbedError(RuntimeError):
    """A test-bed process failed to start or an operation on it failed."""

    __test__ = False  # the name starts with "Test"; keep pytest from collecting it


class TestbedUnavailable(TestbedError):
    """The test-bed binaries cannot be located or built on this machine."""


# --------------------------------------------------------------------------- binaries


@dataclass(frozen=True)
class Binaries:
    """Paths of the control-plane binaries in one bin dir."""

    bin_dir: Path

    @property
    def etcd(self) -> Path:
        return self.bin_dir / "etcd"

    @property
    def kube_apiserver(self) -> Path:
        return self.bin_dir / "kube-apiserver"

    @property
    def helm(self) -> Path:
        return self.bin_dir / "helm"

    def missing(self) -> list[str]:
        """Return the names of binaries that are absent or not executable."""
        paths = (self.etcd, self.kube_apiserver, self.helm)
        return [p.name for p in paths if not os.access(p, os.X_OK)]


def locate_binaries(build: bool = True) -> Binaries:
    """Find the test-bed binaries.

    `LOGSTREAM_TESTBED_BIN` wins when set. Otherwise `scripts/testbed.sh` runs. It
    returns at once when the cache is warm. When the cache is cold it builds the
    binaries, which took 5.5 minutes on a 2-core machine with empty Go caches.
    With `build=False` the script only runs with `--print-bin`.
    Raises `TestbedUnavailable` with the reason when no usable bin dir results.
    """
    from_env = os.environ.get("LOGSTREAM_TESTBED_BIN")
    if from_env:
        return _checked_binaries(Path(from_env), source="LOGSTREAM_TESTBED_BIN")

    if shutil.which("bash") is None:
        raise TestbedUnavailable("bash not found in PATH; it is needed to run scripts/testbed.sh")
    if build and shutil.which("go") is None:
        # Without Go the script can still report a warm cache.
        build = False
    argv = ["bash", str(BUILD_SCRIPT)] + ([] if build else ["--print-bin"])
    # No timeout: a cold build is long, and the script serializes parallel callers.
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.splitlines()[-LOG_TAIL_LINES:])
        hint = "" if build else " (go not found in PATH, so nothing was built)"
        raise TestbedUnavailable(
            f"{' '.join(argv)} failed with exit code {result.returncode}{hint}:\n{tail}"
        )
    lines = result.stdout.strip().splitlines()
    if not lines:
        raise TestbedUnavailable(f"{' '.join(argv)} printed no bin dir")
    return _checked_binaries(Path(lines[-1]), source=BUILD_SCRIPT.name)


def _checked_binaries(bin_dir: Path, source: str) -> Binaries:
    binaries = Binaries(bin_dir)
    missing = binaries.missing()
    if missing:
        raise TestbedUnavailable(f"{source} names {bin_dir}, which lacks: {', '.join(missing)}")
    return binaries


def binary_version(binary: Path) -> str:
    """Return the version that `binary --version` prints, e.g. 'v1.34.4' for kube-apiserver."""
    output = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    # kube-apiserver prints "Kubernetes v1.34.4".
    return output.split()[-1] if output.split() else ""


# --------------------------------------------------------------------------- processes


@dataclass
class _Process:
    """A child process in its own process group, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def exited(self) -> bool:
        return self.popen.poll() is not None


def _spawn(name: str, argv: Sequence[str], log_path: Path) -> _Process:
    log_file = open(log_path, "ab")
    log_file.write(f"--- starting: {' '.join(argv)}\n".encode())
    log_file.flush()
    popen = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        # A new session makes the child a process-group leader, so stop() can kill
        # the whole group.
        start_new_session=True,
    )
    return _Process(name, popen, log_path, log_file)


def _terminate(process: _Process) -> None:
    """Stop a process group: SIGTERM, then SIGKILL after PROCESS_STOP_TIMEOUT seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.popen.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.popen.wait(timeout=PROCESS_STOP_TIMEOUT)
            break
        except subprocess.TimeoutExpired:
            continue
    process.popen.wait()
    process.log_file.close()


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last `lines` lines of a log file, or a note if it cannot be read."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(log {path} unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def _wait_until(check: Callable[[], bool], process: _Process, description: str, timeout: float) -> None:
    """Poll `check` until it returns True. Raise early if `process` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if process.exited():
            raise TestbedError(
                f"{process.name} exited with code {process.popen.returncode} "
                f"while waiting for {description}; log tail of {process.log_path}:\n"
                f"{log_tail(process.log_path)}"
            )
        if check():
            return
        if time.monotonic() >= deadline:
            raise TestbedError(
                f"timed out after {timeout:.0f} s waiting for {description}; "
                f"log tail of {process.log_path}:\n{log_tail(process.log_path)}"
            )
        time.sleep(POLL_INTERVAL)


def _port_conflict(process: _Process) -> bool:
    return process.exited() and "address already in use" in log_tail(process.log_path, 200)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now (another process may take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------- PKI


@dataclass(frozen=True)
class _Pki:
    ca_file: Path
    serving_cert: Path
    serving_key: Path
    sa_public_key: Path
    sa_signing_key: Path


def _write_pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    """Build a CA certificate (issuer None) or a serving certificate for 127.0.0.1."""
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Back-dated by an hour so small clock differences do not matter.
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    else:
        san = x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")]
        )
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        builder = builder.add_extension(san, critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write_pki(directory: Path) -> _Pki:
    """Write a CA, a serving certificate for 127.0.0.1 and a service-account key pair."""
    directory.mkdir(mode=0o700)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("logstream-testbed-ca", ca_key, None, ca_key)
    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving_cert = _certificate("kube-apiserver", serving_key, ca_cert, ca_key)
    sa_key = ec.generate_private_key(ec.SECP256R1())
    sa_public = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _Pki(
        ca_file=_write_pem(directory / "ca.crt", ca_cert.public_bytes(serialization.Encoding.PEM)),
        serving_cert=_write_pem(
            directory / "apiserver.crt", serving_cert.public_bytes(serialization.Encoding.PEM)
        ),
        serving_key=_write_pem(directory / "apiserver.key", _private_pem(serving_key)),
        sa_public_key=_write_pem(directory / "sa.pub", sa_public),
        sa_signing_key=_write_pem(directory / "sa.key", _private_pem(sa_key)),
    )


# --------------------------------------------------------------------------- kubeconfig


def write_token_kubeconfig(path: Path, server_url: str, ca_pem: bytes, user: str, token: str) -> Path:
    """Write a kubeconfig with one cluster, one token user and one current context.

    The file is JSON, which every kubeconfig loader accepts because JSON is YAML.
    The CA is embedded, so the file works after it is copied elsewhere.
    """
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "logstream-testbed",
                "cluster": {
                    "server": server_url,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": user, "context": {"cluster": "logstream-testbed", "user": user}}
        ],
        "current-context": user,
        "preferences": {},
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path


# --------------------------------------------------------------------------- HTTP


def _http_json(
    url: str,
    *,
    method: str = "GET",
    body: Any = None,
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, Any]:
    """Send one request; return (status, decoded JSON or text). Connection errors raise OSError."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


# --------------------------------------------------------------------------- cluster


class TestCluster:
    """etcd plus kube-apiserver on free loopback ports, with token users.

    Users (static token file): `admin` in group `system:masters`, and `limited`, whose
    only group is `system:authenticated`, so RBAC grants it discovery and nothing else.

    The admission plugin ServiceAccount is disabled by default: without a controller
    manager no `default` service account exists, and the plugin would reject every pod.
    `apiserver_args` are appended after the defaults, so they override them (the last
    value of a flag wins).
    """

    __test__ = False  # keep pytest from collecting this class as a test

    def __init__(
        self,
        binaries: Binaries | None = None,
        *,
        watch_cache: bool = True,
        watch_cache_sizes: Sequence[str] = (),
        apiserver_args: Sequence[str] = (),
        start_timeout: float = DEFAULT_START_TIMEOUT,
        keep_workdir: bool | None = None,
    ) -> None:
        self._binaries = binaries
        self.watch_cache = watch_cache
        self.watch_cache_sizes = list(watch_cache_sizes)
        self.apiserver_args = list(apiserver_args)
        self.start_timeout = start_timeout
        if keep_workdir is None:
            keep_workdir = os.environ.get("LOGSTREAM_TESTBED_KEEP") == "1"
        self.keep_workdir = keep_workdir

        self.workdir: Path | None = None
        self.kube_version = ""
        self.etcd_url = ""
        self.server_url = ""
        self.apiserver_port = 0
        self.ca_file: Path | None = None
        self.admin_token = secrets.token_urlsafe(32)
        self.limited_token = secrets.token_urlsafe(32)
        self.admin_kubeconfig: Path | None = None
        self.limited_kubeconfig: Path | None = None
        self.current_extra_args: list[str] = []
        self._pki: _Pki | None = None
        self._etcd: _Process | None = None
        self._apiserver: _Process | None = None

    # ----------------------------------------------------------------- lifecycle

    def __enter__(self) -> TestCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def binaries(self) -> Binaries:
        if self._binaries is None:
            self._binaries = locate_binaries()
        return self._binaries

    @property
    def etcd_log(self) -> Path:
        return self._require_workdir() / "etcd.log"

    @property
    def apiserver_log(self) -> Path:
        return self._require_workdir() / "kube-apiserver.log"

    def start(self) -> None:
        """Start etcd, then kube-apiserver, and return when `/readyz` returns 200."""
        if self.workdir is not None:
            raise TestbedError("TestCluster.start() called twice; call stop() first")
        binaries = self.binaries
        self.workdir = Path(tempfile.mkdtemp(prefix="logstream-testbed-"))
        try:
            self.kube_version = binary_version(binaries.kube_apiserver)
            self._pki = _write_pki(self.workdir / "pki")
            self.ca_file = self._pki.ca_file
            self._write_token_file()
            self._start_etcd()
            self._start_apiserver(extra_args=[], pick_port=True)
            self._write_kubeconfigs()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Kill kube-apiserver and etcd and remove the temp dir. Safe to call repeatedly."""
        for attribute in ("_apiserver", "_etcd"):
            process = getattr(self, attribute)
            if process is not None:
                _terminate(process)
                setattr(self, attribute, None)
        if self.workdir is not None and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None

    @property
    def apiserver_pid(self) -> int | None:
        """The kube-apiserver process id, for tests that pause it with SIGSTOP."""
        return self._apiserver.popen.pid if self._apiserver is not None else None

    def restart_apiserver(self, extra_args: list[str] | None = None) -> None:
        """Restart kube-apiserver on the same port, keeping etcd and its data.

        `extra_args` apply to this run only and come after the configured arguments,
        so for example `["--watch-cache=false"]` turns the watch cache off. The next
        call without `extra_args` goes back to the configured arguments.
        """
        self._require_workdir()
        if self._apiserver is not None:
            _terminate(self._apiserver)
            self._apiserver = None
        self._start_apiserver(extra_args=list(extra_args or []), pick_port=False)

    def compact_etcd(self) -> int:
        """Compact etcd up to its current revision and return that revision.

        A watch from resourceVersion V starts at revision V + 1, so it can no longer be
        served from etcd once V + 1 is below the returned revision (two writes after V).
        The API server's watch cache can still serve such a watch from memory without
        a 410. Restart with `--watch-cache=false` so that etcd serves watches.
        """
        revision = self.etcd_revision()
        status, reply = _http_json(
            f"{self.etcd_url}/v3/kv/compaction",
            method="POST",
            # The gRPC-gateway encodes int64 as a JSON string. "physical" makes the call
            # return only after the compaction is applied to the backend.
            body={"revision": str(revision), "physical": True},
        )
        if status != 200 and "compacted" not in str(reply):
            raise TestbedError(f"etcd compaction to revision {revision} failed: HTTP {status} {reply}")
        return revision

    def etcd_revision(self) -> int:
        """Return etcd's current store revision, read through its HTTP/JSON gateway."""
        status, reply = _http_json(
            f"{self.etcd_url}/v3/kv/range",
            method="POST",
            body={"key": base64.b64encode(b"/").decode(), "count_only": True},
        )
        if status != 200 or not isinstance(reply, dict):
            raise TestbedError(f"etcd range request failed: HTTP {status} {reply}")
        return int(reply["header"]["revision"])

    # ----------------------------------------------------------------- access

    def admin_ssl_context(self) -> ssl.SSLContext:
        """Return a TLS client context that trusts the test CA."""
        return ssl.create_default_context(cafile=str(self._require(self.ca_file, "ca_file")))

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def is_ready(self) -> bool:
        """Return True when `/readyz` returns 200 to the admin user."""
        try:
            status, _ = _http_json(
                f"{self.server_url}/readyz",
                context=self.admin_ssl_context(),
                headers=self.admin_headers(),
                timeout=5.0,
            )
        except OSError:
            return False
        return status == 200

    # ----------------------------------------------------------------- internals

    def _require_workdir(self) -> Path:
        return self._require(self.workdir, "workdir (the cluster is not started)")

    @staticmethod
    def _require(value: _T | None, description: str) -> _T:
        if value is None:
            raise TestbedError(f"TestCluster has no {description}; call start() first")
        return value

    def _write_token_file(self) -> None:
        # Static token file columns: token, user name, user uid, "group1,group2".
        path = self._require_workdir() / "tokens.csv"
        path.write_text(
            f'{self.admin_token},{ADMIN_USER},uid-admin,"system:masters"\n'
            f"{self.limited_token},{LIMITED_USER},uid-limited\n"
        )
        path.chmod(0o600)

    def _etcd_argv(self, client_port: int, peer_port: int) -> list[str]:
        client_url = f"http://{LOOPBACK}:{client_port}"
        peer_url = f"http://{LOOPBACK}:{peer_port}"
        return [
            str(self.binaries.etcd),
            "--name=testbed",
            f"--data-dir={self._require_workdir() / 'etcd-data'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=testbed={peer_url}",
            "--initial-cluster-state=new",
            # Test data is disposable, and fsync dominates write latency.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _start_etcd(self) -> None:
        for attempt in range(1, PORT_ATTEMPTS + 1):
            client_port, peer_port = free_port(), free_port()
            self.etcd_url = f"http://{LOOPBACK}:{client_port}"
            process = _spawn("etcd", self._etcd_argv(client_port, peer_port), self.etcd_log)
            self._etcd = process
            try:
                _wait_until(self._etcd_healthy, process, "etcd /health", self.start_timeout)
                return
            except TestbedError:
                if attempt < PORT_ATTEMPTS and _port_conflict(process):
                    _terminate(process)
                    # etcd may have written a member dir before failing to bind.
                    shutil.rmtree(self._require_workdir() / "etcd-data", ignore_errors=True)
                    continue
                raise

    def _etcd_healthy(self) -> bool:
        try:
            status, reply = _http_json(f"{self.etcd_url}/health", timeout=2.0)
        except OSError:
            return False
        return status == 200 and isinstance(reply, dict) and reply.get("health") == "true"

    def _apiserver_argv(self, extra_args: Sequence[str]) -> list[str]:
        pki = self._require(self._pki, "PKI")
        workdir = self._require_workdir()
        argv = [
            str(self.binaries.kube_apiserver),
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={self.apiserver_port}",
            f"--etcd-servers={self.etcd_url}",
            f"--cert-dir={workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--token-auth-file={workdir / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            # The issuer is only a name written into tokens, and nothing fetches it.
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_public_key}",
            f"--service-account-signing-key-file={pki.sa_signing_key}",
            # The CIDR that Service ClusterIPs are allocated from. No traffic goes there.
            "--service-cluster-ip-range=10.0.0.0/24",
            # The endpoint reconciler would publish 127.0.0.1 as the endpoint of the
            # `kubernetes` Service, which validation rejects (loopback).
            "--endpoint-reconciler-type=none",
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            "--profiling=false",
            f"--watch-cache={'true' if self.watch_cache else 'false'}",
        ]
        if self.watch_cache_sizes:
            argv.append(f"--watch-cache-sizes={','.join(self.watch_cache_sizes)}")
        return argv + self.apiserver_args + list(extra_args)

    def _start_apiserver(self, extra_args: list[str], pick_port: bool) -> None:
        self.current_extra_args = extra_args
        attempts = PORT_ATTEMPTS if pick_port else 1
        for attempt in range(1, attempts + 1):
            if pick_port:
                self.apiserver_port = free_port()
            self.server_url = f"https://{LOOPBACK}:{self.apiserver_port}"
            process = _spawn("kube-apiserver", self._apiserver_argv(extra_args), self.apiserver_log)
            self._apiserver = process
            try:
                _wait_until(self.is_ready, process, "kube-apiserver /readyz", self.start_timeout)
                return
            except TestbedError:
                if attempt < attempts and _port_conflict(process):
                    _terminate(process)
                    continue
                raise

    def _write_kubeconfigs(self) -> None:
        workdir = self._require_workdir()
        ca_pem = self._require(self.ca_file, "ca_file").read_bytes()
        self.admin_kubeconfig = write_token_kubeconfig(
            workdir / "admin.kubeconfig", self.server_url, ca_pem, ADMIN_USER, self.admin_token
        )
        self.limited_kubeconfig = write_token_kubeconfig(
            workdir / "limited.kubeconfig", self.server_url, ca_pem, LIMITED_USER, self.limited_token
        )


# --------------------------------------------------------------------------- external


class ExternalCluster:
    """An existing cluster (for example kind) reached through a kubeconfig file.

    It has the attributes of `TestCluster`. The admin credentials are those of the
    kubeconfig's current context (token or client certificate; exec plugins are not
    supported). The limited user is the ServiceAccount `limited` in namespace
    `default`: `start()` creates it, binds no role to it and requests a one-hour token.
    """

    __test__ = False

    LIMITED_NAMESPACE = "default"

    def __init__(self, kubeconfig: Path | str) -> None:
        self.admin_kubeconfig = Path(kubeconfig)
        self.limited_kubeconfig: Path | None = None
        self.server_url = ""
        self.ca_file: Path | None = None
        self.admin_token: str | None = None
        self.admin_client_cert: tuple[Path, Path] | None = None
        self.limited_token = ""
        self.kube_version = ""
        self.workdir: Path | None = None

    def __enter__(self) -> ExternalCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Read the kubeconfig, check `/version` and create the limited user's token."""
        self.workdir = Path(tempfile.mkdtemp(prefix="logstream-external-"))
        try:
            self._load_kubeconfig()
            status, reply = _http_json(
                f"{self.server_url}/version", context=self.admin_ssl_context(), headers=self.admin_headers()
            )
            if status != 200:
                raise TestbedError(f"GET {self.server_url}/version returned HTTP {status}: {reply}")
            self.kube_version = reply.get("gitVersion", "") if isinstance(reply, dict) else ""
            self.limited_token = self._request_limited_token()
            ca_pem = self.ca_file.read_bytes() if self.ca_file else b""
            self.limited_kubeconfig = write_token_kubeconfig(
                self.workdir / "limited.kubeconfig", self.server_url, ca_pem, LIMITED_USER, self.limited_token
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Remove the temp dir. The ServiceAccount `limited` stays for the next run."""
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None

    def restart_apiserver(self, extra_args: list[str] | None = None) -> None:
        import pytest

        pytest.skip("restart_apiserver() needs the local test bed, not an external cluster")

    def compact_etcd(self) -> int:
        import pytest

        pytest.skip("compact_etcd() needs the local test bed, not an external cluster")

    def is_ready(self) -> bool:
        """Return True when `/readyz` returns 200 to the admin user."""
        try:
            status, _ = _http_json(
                f"{self.server_url}/readyz", context=self.admin_ssl_context(), headers=self.admin_headers()
            )
        except OSError:
            return False
        return status == 200

    def admin_ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.admin_client_cert:
            context.load_cert_chain(str(self.admin_client_cert[0]), str(self.admin_client_cert[1]))
        return context

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"} if self.admin_token else {}

    # ----------------------------------------------------------------- internals

    def _load_kubeconfig(self) -> None:
        config = _parse_kubeconfig(self.admin_kubeconfig)
        context = _named(config, "contexts", config.get("current-context", ""))["context"]
        cluster = _named(config, "clusters", context["cluster"])["cluster"]
        user = _named(config, "users", context["user"])["user"]
        base = self.admin_kubeconfig.parent

        self.server_url = cluster["server"].rstrip("/")
        self.ca_file = self._file_or_data(cluster, "certificate-authority", base, "ca.crt")
        self.admin_token = user.get("token")
        if not self.admin_token and user.get("tokenFile"):
            self.admin_token = (base / user["tokenFile"]).read_text().strip()
        cert = self._file_or_data(user, "client-certificate", base, "client.crt")
        key = self._file_or_data(user, "client-key", base, "client.key")
        self.admin_client_cert = (cert, key) if cert and key else None
        if not self.admin_token and not self.admin_client_cert:
            raise TestbedError(
                f"{self.admin_kubeconfig}: user {context['user']!r} has neither a token nor a "
                "client certificate; exec and auth-provider plugins are not supported"
            )

    def _file_or_data(self, section: dict[str, Any], field: str, base: Path, name: str) -> Path | None:
        """Return the path of `field`, writing `field-data` (base64) to the temp dir if needed."""
        if section.get(f"{field}-data"):
            if self.workdir is None:
                raise TestbedError("ExternalCluster has no temp dir; call start() first")
            return _write_pem(self.workdir / name, base64.b64decode(section[f"{field}-data"]))
        if section.get(field):
            return base / str(section[field])
        return None

    def _request_limited_token(self) -> str:
        namespace_url = f"{self.server_url}/api/v1/namespaces/{self.LIMITED_NAMESPACE}/serviceaccounts"
        context, headers = self.admin_ssl_context(), self.admin_headers()
        body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": LIMITED_USER}}
        status, reply = _http_json(namespace_url, method="POST", body=body, context=context, headers=headers)
        if status not in (201, 409):  # 409: created by an earlier run
            raise TestbedError(f"creating ServiceAccount {LIMITED_USER} failed: HTTP {status} {reply}")
        token_request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        }
        status, reply = _http_json(
            f"{namespace_url}/{LIMITED_USER}/token",
            method="POST",
            body=token_request,
            context=context,
            headers=headers,
        )
        if status != 201 or not isinstance(reply, dict):
            raise TestbedError(f"TokenRequest for {LIMITED_USER} failed: HTTP {status} {reply}")
        return str(reply["status"]["token"])


def _parse_kubeconfig(path: Path) -> dict[str, Any]:
    """Parse a kubeconfig written as JSON or YAML (PyYAML is needed only for YAML)."""
    text = path.read_text()
    try:
        config = json.loads(text)
    except ValueError:
        try:
            import yaml
        except ImportError as exc:
            raise TestbedError(f"{path} is YAML; install PyYAML to read it") from exc
        config = yaml.safe_load(text)
    if not isinstance(config, dict):
        raise TestbedError(f"{path} is not a kubeconfig: its top level is not a mapping")
    return config


def _named(config: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    for entry in config.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    raise TestbedError(f"kubeconfig has no entry {name!r} in {section}")
