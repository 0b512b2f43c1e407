"""A real stack for end-to-end tests: gunicorn, a Celery worker and the scheduler, started as
separate processes on the test database, in the suite's mode: PostgreSQL and Redis, or the
embedded defaults (the SQLite test database file, Celery's filesystem transport)."""

import os
import subprocess
from dataclasses import dataclass

import pytest
import redis
import requests
from django.db import connection

from tests.conftest import basic_auth
from tests.services import (
    BIN,
    ROOT,
    STACK_SETTINGS,
    STARTUP_TIMEOUT,
    Process,
    Stack,
    free_port,
    require_postgres_and_redis,
    stack_redis_url,
    test_database_url,
    wait_for,
    web_answers,
)


@pytest.fixture(scope="session")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        # Embedded (SQLite): no Redis; the broker is a folder under the stack's own VAR_DIR.
        # On Redis, a database of its own (stack_redis_url). Either way its worker never takes
        # the tasks that in-process tests queue.
        postgres = connection.vendor == "postgresql"
        redis_url = stack_redis_url(require_postgres_and_redis()) if postgres else ""
        database_url = test_database_url()
    base_url = f"http://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        **STACK_SETTINGS,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url or "filesystem://",
        "CONN_MAX_AGE": "0",
        # Providers given a per-message callback (Twilio, Vonage) call us back here.
        "PUBLIC_BASE_URL": base_url,
    }
    # The admin's CSS and JS, served by WhiteNoise from a collected STATIC_ROOT under VAR_DIR.
    env["VAR_DIR"] = str(tmp_path_factory.mktemp("stack-var"))
    subprocess.run(
        [str(BIN / "python"), "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    if redis_url:
        redis.Redis.from_url(redis_url).flushdb()
    stack = Stack(
        base_url=base_url,
        redis_url=redis_url,
        env=env,
        log_dir=tmp_path_factory.mktemp("stack-logs"),
    )
    for name in ("web", "worker", "timers", "scheduler"):
        stack.start(name)
    try:
        wait_for(lambda: web_answers(stack.base_url), STARTUP_TIMEOUT, message="gunicorn to answer")
        yield stack
    finally:
        for process in stack.processes.values():
            process.kill()


class Client:
    """The API over real HTTP, as a caller's service would use it."""

    def __init__(self, base_url: str, api_key: str, api_secret: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = basic_auth(api_key, api_secret)

    def create(self, body: dict, path: str = "/beta/workflows") -> str:
        response = self.session.post(self.base_url + path, json=body, timeout=10)
        assert response.status_code == 202, response.text
        return response.json()["workflow_uuid"]

    def get(self, workflow_uuid: str) -> dict:
        response = self.session.get(f"{self.base_url}/beta/workflows/{workflow_uuid}", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_until_finished(self, workflow_uuid: str, timeout: float = 20) -> dict:
        return wait_for(
            lambda: (run := self.get(workflow_uuid))["status"] != "running" and run,
            timeout,
            interval=0.2,
            message=f"run {workflow_uuid} to finish",
        )


@pytest.fixture
def client(stack, transactional_db, account):
    return Client(stack.base_url, account.account.api_key, account.api_secret)


@dataclass
class TlsWeb:
    """The web app served over HTTPS, for clients that insist on ``https://`` (Vonage's SDK)."""

    host: str  # "127.0.0.1:PORT", what the SDK takes as its api_host
    ca_bundle: str  # the throwaway certificate, for REQUESTS_CA_BUNDLE / verify=


@pytest.fixture(scope="session")
def tls_web(stack, tmp_path_factory):
    """A second gunicorn on the stack's database and Redis, with a throwaway certificate."""
    directory = tmp_path_factory.mktemp("tls")
    cert_path, key_path = write_self_signed_certificate(directory)
    host = f"127.0.0.1:{free_port()}"
    argv = [
        str(BIN / "gunicorn"),
        "orchestrator.wsgi",
        "--bind",
        host,
        "--workers",
        "1",
        "--threads",
        "4",
        "--certfile",
        str(cert_path),
        "--keyfile",
        str(key_path),
    ]
    process = Process("web-tls", argv, stack.env, stack.log_dir).start()
    stack.processes["web-tls"] = process
    base_url = f"https://{host}"

    def answers() -> bool:
        try:
            requests.get(base_url + "/beta/workflows/x", timeout=1, verify=str(cert_path))
        except requests.RequestException:
            return False
        return True

    wait_for(answers, STARTUP_TIMEOUT, message="gunicorn over TLS to answer")
    return TlsWeb(host=host, ca_bundle=str(cert_path))


def write_self_signed_certificate(directory) -> tuple[object, object]:
    """A one-day certificate for 127.0.0.1 and localhost; returns (cert path, key path)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
