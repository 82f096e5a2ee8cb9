"""Serving an emulated org: uvicorn over HTTP or HTTPS (self-signed certificate, generated).

``EmulatorServer`` runs it in a background thread of the calling process (tests, the demo);
``spawn_emulator`` runs it as a child process (benchmarks, end-to-end tests) and waits for it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .app import create_app
from .credentials import DEFAULT_CLIENT_ID as DEFAULT_CLIENT_ID
from .credentials import DEFAULT_CLIENT_SECRET as DEFAULT_CLIENT_SECRET
from .middleware import InjectedReset
from .org import Org
from .profile import OrgProfile
from .schema import load_schema
from .tokens import AppCredentials


def ensure_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost, created once per data dir."""
    cert, key = directory / "tls" / "cert.pem", directory / "tls" / "key.pem"
    if cert.exists() and key.exists():
        return cert, key
    cert.parent.mkdir(parents=True, exist_ok=True)
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dc-to-core emulator")])
    now = dt.datetime.now(dt.UTC)
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1"))]
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(private.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256()))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    os.chmod(key, 0o600)
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key


class _QuietResets(logging.Filter):
    """Injected connection resets are intended; keep their tracebacks out of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, InjectedReset)


@dataclass
class EmulatorConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    https: bool = True
    profile: OrgProfile = field(default_factory=OrgProfile)
    app: AppCredentials = field(default_factory=lambda: AppCredentials(
        DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET))
    schema_path: Path | None = None
    log_level: str = "warning"


class EmulatorServer:
    """An org served by uvicorn in a daemon thread. Use as a context manager."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.org: Org | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.ca_file: Path | None = None

    def start(self) -> EmulatorServer:
        c = self.config
        sock = socket.socket(socket.AF_INET6 if ":" in c.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((c.host, c.port))
        port = sock.getsockname()[1]
        host = f"[{c.host}]" if ":" in c.host else c.host
        self.url = f"{'https' if c.https else 'http'}://{host}:{port}"
        self.org = Org(c.data_dir, c.profile, c.app, load_schema(c.schema_path))
        self.org.tokens.instance_url = self.url
        tls: dict = {}
        if c.https:
            cert, key = ensure_certificate(Path(c.data_dir))
            self.ca_file = cert
            tls = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
        logging.getLogger("uvicorn.error").addFilter(_QuietResets())
        config = uvicorn.Config(create_app(self.org), log_level=c.log_level, access_log=False,
                                lifespan="off", timeout_keep_alive=60,
                                timeout_graceful_shutdown=2, **tls)
        self._server = uvicorn.Server(config)
        self.org.start()
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="emulator-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the emulator did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True  # do not wait for clients' keep-alive connections
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self.org is not None:
            self.org.stop()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class SpawnedEmulator:
    """An emulator running as a child process (``dc-to-core emulator``)."""

    process: subprocess.Popen
    url: str
    ca_file: str | None
    data_dir: Path

    def stop(self, timeout: float = 15) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def spawn_emulator(data_dir: Path, *args: str, timeout: float = 60,
                   env: dict[str, str] | None = None) -> SpawnedEmulator:
    """Start ``dc-to-core emulator --data-dir DIR ARGS…`` and wait until it serves."""
    ready = Path(data_dir) / "ready.json"
    ready.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "dc_to_core.cli", "emulator", "--data-dir", str(data_dir),
           "--port", "0", "--ready-file", str(ready), *args]
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"the emulator exited with code {proc.returncode}: {' '.join(cmd)}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the emulator did not start within {timeout:.0f} s")
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    return SpawnedEmulator(proc, info["url"], info.get("ca_file"), Path(data_dir))
