"""The SSRF guard: feeds on loopback, private or metadata addresses are refused unless allowed, whatever the name's
DNS answers, and the address checked is the address connected to.

The "DNS server" is `socket.getaddrinfo`, replaced for the test's own names; the HTTP servers are real ones on
loopback. A name that answers a public address and is then connected to would reach outside the machine, so the
rebinding test proper gives the guard a rule that permits 127.0.0.1 and refuses 127.0.0.2 (both this machine) and
serves a feed on each.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas import FeedSource
from services.errors import FeedError, FetchError
from services.poller.fetch import MAX_CONNECTIONS, FetchResult, build_client, fetch_feed
from services.poller.guard import CheckedAddressBackend, GuardedTransport
from services.settings import Settings
from tests.support.feed_server import FeedServer, rss

PUBLIC = "93.184.215.14"  # any globally routable address; the guard refuses before connecting to it
NAME = "feeds.example.com"


class FakeDns:
    """Stands in for a DNS server: each lookup of a name in `answers` takes the next of its answers (the last one
    repeats, as a TTL of 0 allows); other names resolve as usual."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []
        self._real = socket.getaddrinfo

    def __call__(self, host: str | bytes | None, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                 flags: int = 0) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return self._real(host, port, family, type, proto, flags)
        answers = self.answers[name]
        answer = answers[min(self.lookups.count(name), len(answers) - 1)]
        self.lookups.append(name)
        port = int(port or 0)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port)) for address in answer]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    fake = FakeDns({})
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


def feed_server_at(host: str, port: int) -> FeedServer:
    """A `FeedServer` listening on `host:port` instead of a free port on 127.0.0.1."""
    server = FeedServer()
    handler = server.httpd.RequestHandlerClass
    server.httpd.server_close()
    server.httpd = ThreadingHTTPServer((host, port), handler)
    server.url = f"http://{host}:{port}"
    return server


def guarded_client() -> httpx.AsyncClient:
    """A client like `build_client`'s whose guard permits 127.0.0.1, standing in for a public address, and refuses
    every other address."""
    backend = CheckedAddressBackend(permits=lambda address: address == "127.0.0.1")
    transport = GuardedTransport(httpx.Limits(max_connections=MAX_CONNECTIONS), backend=backend)
    return httpx.AsyncClient(transport=transport, timeout=5, follow_redirects=True)


async def fetch(client: httpx.AsyncClient, url: str) -> FetchResult:
    return await fetch_feed(client, FeedSource(id="f", name="f", url=url), etag=None, last_modified=None,
                            max_body_bytes=100_000)


GUARDED = Settings(_env_file=None)
ALLOWED = Settings(_env_file=None, allow_private_hosts=True)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/rss", "http://localhost:9/rss", "http://10.0.0.1/rss", "http://169.254.169.254/latest",
     "http://[::1]:9/rss", "http://192.168.1.1/rss"],
    ids=["loopback", "localhost", "rfc1918", "metadata", "ipv6-loopback", "home-router"],
)
async def test_private_addresses_are_refused_by_default(url: str) -> None:
    """A feed URL that resolves to a non-public address is a FeedError naming it, and no request is sent."""
    async with build_client(GUARDED) as client:
        with pytest.raises(FeedError, match=r"refused: .*non-public address"):
            await fetch(client, url)


async def test_a_public_looking_name_on_loopback_is_refused(dns: FakeDns) -> None:
    """A name under a public domain whose DNS answers 127.0.0.1 is refused, naming the host and the address, and
    the server behind that address hears nothing."""
    with FeedServer() as server:
        server.routes["/a.xml"] = rss(("g1", "t", "x"))
        port = server.url.rsplit(":", 1)[1]
        dns.answers[NAME] = [["127.0.0.1"]]
        async with build_client(GUARDED) as client:
            with pytest.raises(FeedError, match=rf"refused: {NAME} resolves to a non-public address \(127\.0\.0\.1\)"):
                await fetch(client, f"http://{NAME}:{port}/a.xml")
    assert server.requests == []
    assert dns.lookups == [NAME]


async def test_one_private_address_among_public_ones_is_refused(dns: FakeDns) -> None:
    """Every address a name resolves to is checked, not only the first: the connection could go to any of them."""
    with FeedServer() as server:
        port = server.url.rsplit(":", 1)[1]
        dns.answers[NAME] = [[PUBLIC, "127.0.0.1"]]
        async with build_client(GUARDED) as client:
            with pytest.raises(FeedError, match=r"non-public address \(127\.0\.0\.1\)"):
                await fetch(client, f"http://{NAME}:{port}/a.xml")
    assert server.requests == []


async def test_a_redirect_to_a_refused_address_is_refused() -> None:
    """A redirect makes a new connection, checked like the first: the redirect's target hears nothing."""
    with FeedServer() as permitted:
        port = int(permitted.url.rsplit(":", 1)[1])
        with feed_server_at("127.0.0.2", port) as refused:
            refused.routes["/inside"] = rss(("secret", "t", "x"))
            permitted.failures["/a.xml"] = (302, {"Location": f"{refused.url}/inside"})
            async with guarded_client() as client:
                with pytest.raises(FeedError, match=r"refused: 127\.0\.0\.2 resolves to a non-public address"):
                    await fetch(client, f"{permitted.url}/a.xml")
    assert [path for path, _ in permitted.requests] == ["/a.xml"]
    assert refused.requests == []


async def test_rebinding_cannot_move_the_connection_past_the_check(dns: FakeDns) -> None:
    """DNS rebinding: the name answers an address the guard permits, then one it refuses (TTL 0). The connection
    goes to the address that was checked, so the feed comes from the permitted server and the refused one hears
    nothing; the name is looked up once."""
    with FeedServer() as permitted:
        permitted.routes["/a.xml"] = rss(("permitted", "t", "x"))
        port = int(permitted.url.rsplit(":", 1)[1])
        with feed_server_at("127.0.0.2", port) as refused:
            refused.routes["/a.xml"] = rss(("refused", "t", "x"))
            dns.answers[NAME] = [["127.0.0.1"], ["127.0.0.2"]]
            async with guarded_client() as client:
                result = await fetch(client, f"http://{NAME}:{port}/a.xml")
    assert result.body is not None
    assert b"<guid>permitted</guid>" in result.body
    assert permitted.requests == [("/a.xml", None)]
    assert refused.requests == []
    assert dns.lookups == [NAME]


async def test_rebinding_to_a_refused_address_is_refused(dns: FakeDns) -> None:
    """The other order: the lookup that the connection uses is the one checked, so a name answering the refused
    address is refused, naming it, and neither server hears anything."""
    with FeedServer() as permitted:
        port = int(permitted.url.rsplit(":", 1)[1])
        with feed_server_at("127.0.0.2", port) as refused:
            dns.answers[NAME] = [["127.0.0.2"], ["127.0.0.1"]]
            async with guarded_client() as client:
                with pytest.raises(FeedError, match=rf"refused: {NAME} resolves to .*\(127\.0\.0\.2\)"):
                    await fetch(client, f"http://{NAME}:{port}/a.xml")
    assert permitted.requests == []
    assert refused.requests == []


async def test_allowed_private_hosts_are_fetched(dns: FakeDns) -> None:
    """With allow_private_hosts a loopback feed is fetched as usual, by address or by a name that resolves there."""
    with FeedServer() as server:
        server.routes["/a.xml"] = rss(("g1", "t", "x"))
        port = server.url.rsplit(":", 1)[1]
        dns.answers[NAME] = [["127.0.0.1"]]
        async with build_client(ALLOWED) as client:
            by_address = await fetch(client, f"{server.url}/a.xml")
            by_name = await fetch(client, f"http://{NAME}:{port}/a.xml")
    assert (by_address.status, by_name.status) == (200, 200)
    assert [path for path, _ in server.requests] == ["/a.xml", "/a.xml"]


# TLS: a certificate for NAME from a CA of the test's own, served on 127.0.0.1.


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ca.pem, and leaf.pem with leaf.key for NAME signed by it (made with the openssl tool)."""
    directory = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA")
    openssl("req", *curve, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", f"/CN={NAME}")
    (directory / "leaf.ext").write_text(
        f"subjectAltName=DNS:{NAME}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext")
    return directory


class TlsFeedServer(FeedServer):
    """A `FeedServer` speaking HTTPS with the leaf certificate; records the name each client asked for (SNI)."""

    def __init__(self, certificates: Path) -> None:
        super().__init__()
        self.server_names: list[str | None] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificates / "leaf.pem", certificates / "leaf.key")
        context.sni_callback = self._record_server_name
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = self.url.replace("http://", "https://")

    def _record_server_name(self, _socket: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        self.server_names.append(name)


@pytest.fixture
def no_ca_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)


async def test_https_through_the_guard_verifies_the_certificate_for_the_name(
    dns: FakeDns, certificates: Path, monkeypatch: pytest.MonkeyPatch, no_ca_from_environment: None,
) -> None:
    """Connecting to the checked address does not connect TLS to the address: the server is asked for the URL's
    name (SNI), and its certificate, valid for that name only, is verified against the trusted CAs."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates / "ca.pem"))  # read when the transport is built
    server = TlsFeedServer(certificates)
    with server:
        server.routes["/a.xml"] = rss(("g1", "t", "x"))
        port = server.url.rsplit(":", 1)[1]
        dns.answers[NAME] = [["127.0.0.1"]]
        async with guarded_client() as client:
            result = await fetch(client, f"https://{NAME}:{port}/a.xml")
    assert result.status == 200
    assert server.server_names == [NAME]


async def test_https_through_the_guard_refuses_an_untrusted_certificate(
    dns: FakeDns, certificates: Path, no_ca_from_environment: None,
) -> None:
    """Without the test's CA among the trusted ones, the same server fails verification and hears no request."""
    with TlsFeedServer(certificates) as server:
        port = server.url.rsplit(":", 1)[1]
        dns.answers[NAME] = [["127.0.0.1"]]
        async with guarded_client() as client:
            with pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED"):
                await fetch(client, f"https://{NAME}:{port}/a.xml")
    assert server.requests == []
