"""The provider sessions read the environment's proxy settings once per host (not on every call,
as requests does), and still honour them: ``HTTP_PROXY`` / ``HTTPS_PROXY``, and ``NO_PROXY``."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from channels_app import http
from channels_app.errors import ErrorKind, ProviderError


class _Proxy(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:  # a forward proxy is sent the absolute URL
        self.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def proxy(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Proxy.seen = []
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_port}")
    http._environ_proxies.cache_clear()
    yield _Proxy.seen
    http._environ_proxies.cache_clear()
    server.shutdown()
    server.server_close()


def test_a_proxy_named_by_the_environment_carries_provider_calls(proxy):
    response = http.run(http.request("GET", "http://provider.invalid/send", config={}))
    assert (response.status_code, response.text) == (200, "ok")
    assert proxy == ["http://provider.invalid/send"]


def test_no_proxy_sends_that_host_direct(proxy, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "provider.invalid")
    with pytest.raises(ProviderError) as raised:  # direct: the name does not resolve
        http.run(http.request("GET", "http://provider.invalid/send", config={"connect_timeout": 2}))
    assert raised.value.kind == ErrorKind.TRANSIENT
    assert proxy == []


def test_an_unparsable_provider_url_is_a_configuration_error(db):
    with pytest.raises(ProviderError) as raised:
        http.run(http.request("GET", "http://[::1/send", config={}))
    assert raised.value.kind == ErrorKind.CONFIGURATION
