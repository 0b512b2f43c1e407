"""Body framing over real HTTP against gunicorn (issue 14.4 and 14.7): a refused body that is
left unread closes the keep-alive connection and says so, so a pooled client's next request
works; a chunked body is read, under the same caps as any other."""

import http.client
import json
import socket
from urllib.parse import urlsplit

import pytest
import requests

from tests.channels_app.conftest import SPECS, connect
from tests.channels_app.receipt_signing import receipt_body, sign
from tests.conftest import CANONICAL_REQUEST, basic_auth

pytestmark = pytest.mark.e2e

THREE_MIB = b"x" * (3 * 1024 * 1024)


@pytest.fixture
def api(stack, transactional_db, account):
    """(host, port, headers) of the stack, with the account's Basic auth."""
    parts = urlsplit(stack.base_url)
    auth = basic_auth(account.account.api_key, account.api_secret)
    return parts.hostname, parts.port, {"Authorization": auth, "Content-Type": "application/json"}


def response_of(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """Read one HTTP/1.1 response with a Content-Length from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection before answering"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", 0)):
        body += sock.recv(65536)
    return status, headers, body


def test_a_413_closes_the_keep_alive_connection_and_says_so(api):
    host, port, headers = api
    with socket.create_connection((host, port), timeout=10) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(
            f"POST /beta/workflows HTTP/1.1\r\nHost: {host}\r\n{head}"
            f"Connection: keep-alive\r\nContent-Length: {len(THREE_MIB)}\r\n\r\n".encode()
            + THREE_MIB
        )
        status, response_headers, body = response_of(sock)
        assert status.split()[1] == "413", body[:200]
        assert response_headers["connection"] == "close"
        assert json.loads(body)["title"]
        sock.settimeout(10)
        while sock.recv(65536):  # the server closes its side: no request is lost on it
            pass


def test_after_a_413_a_pooled_client_sends_its_next_request_without_failing(api):
    host, port, headers = api
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request("POST", "/beta/workflows", THREE_MIB, headers)
    refused = connection.getresponse()
    refused.read()
    assert (refused.status, refused.getheader("Connection")) == (413, "close")
    connection.request("GET", "/beta/workflows?page_size=1", headers=headers)  # reconnects
    assert connection.getresponse().status == 200
    with requests.Session() as session:
        url = f"http://{host}:{port}/beta/workflows"
        assert session.post(url, data=THREE_MIB, headers=headers, timeout=10).status_code == 413
        assert session.get(url, headers=headers, timeout=10).status_code == 200


def test_a_fully_read_request_keeps_the_connection_alive(api):
    host, port, headers = api
    connection = http.client.HTTPConnection(host, port, timeout=10)
    for _ in range(2):
        connection.request("POST", "/beta/workflows", json.dumps(CANONICAL_REQUEST), headers)
        response = connection.getresponse()
        response.read()
        assert (response.status, response.getheader("Connection")) == (202, "keep-alive")
    assert connection.sock is not None  # the same socket served both


def chunks(body: bytes, size: int = 100):
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_chunked_request_is_read_like_any_other(api):
    host, port, headers = api
    connection = http.client.HTTPConnection(host, port, timeout=10)
    body = json.dumps(CANONICAL_REQUEST).encode()
    connection.request("POST", "/beta/workflows", chunks(body), headers, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 202, response.read()[:300]
    assert "workflow_uuid" in json.loads(response.read())


def test_a_chunked_body_over_the_cap_is_a_413_that_closes_the_connection(api):
    host, port, headers = api
    connection = http.client.HTTPConnection(host, port, timeout=10)
    connection.request(
        "POST", "/beta/workflows", chunks(THREE_MIB, 65536), headers, encode_chunked=True
    )
    response = connection.getresponse()
    response.read()
    assert (response.status, response.getheader("Connection")) == (413, "close")


def test_a_chunked_signed_receipt_is_read(stack, transactional_db):
    connection = connect(SPECS["viber"])
    path = f"/webhooks/receipts/viber/{connection.id}"
    signed = sign("viber", receipt_body("viber", "5741311803571721087"), "viber-token", "")
    parts = urlsplit(stack.base_url)
    client = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = {"Content-Type": signed.content_type, **signed.headers}
    client.request("POST", path, chunks(signed.body, 20), headers, encode_chunked=True)
    response = client.getresponse()
    assert response.status == 200, response.read()[:300]
    assert json.loads(response.read()) == {"received": 1}
