"""Database faults (web/faults.py): while the database cannot be reached every route answers 503 with
Retry-After and a JSON body, and recovers by itself when it is back; `db start` keeps its port.

The outage is real: the app talks to the demo database through a TCP relay on loopback, which the test
closes (every connection cut, nothing listening) and opens again on the same port."""

from __future__ import annotations

import socket
import threading

import pytest
from sqlalchemy.engine import make_url

from gridmap.store import cluster
from gridmap.web import create_app


class Relay:
    """Forwards a loopback port to ``target`` (host, port) until :meth:`cut`; :meth:`restore` listens again."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = None
        self.conns: list[socket.socket] = []
        self.restore()

    def restore(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port or 0))
        self.port = self.listener.getsockname()[1]
        self.listener.listen(64)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def cut(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close alone does not)
        except OSError:
            pass
        self.listener.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.conns.clear()

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def relayed(demo_url):
    url = make_url(demo_url)
    relay = Relay((url.host, url.port))
    app = create_app({"DATABASE_URL": url.set(port=relay.port).render_as_string(hide_password=False)})
    yield app.test_client(), relay
    relay.cut()


ROUTES = [
    ("GET", "/api/v1/stats"),
    ("GET", "/api/v1/lookup?lon=113.70&lat=34.75"),
    ("GET", "/api/v1/search?q=宇通"),
    ("GET", "/api/v1/grids/410104006010001"),
    ("GET", "/api/v1/risk/summary"),
    ("GET", "/tiles/street/12/3341/1624.pbf"),
    ("GET", "/ogc/collections/micro/items?limit=2"),
    ("GET", "/"),
]


def _call(client, method, path):
    if method == "POST":
        return client.post(path, json=[{"lon": 113.70, "lat": 34.75}])
    return client.get(path)


def test_an_outage_is_503_and_every_route_recovers(relayed):
    client, relay = relayed
    routes = ROUTES + [("POST", "/api/v1/lookup")]
    assert [_call(client, m, p).status_code for m, p in routes] == [200] * len(routes)  # warm: pools, index
    relay.cut()
    for method, path in routes:
        res = _call(client, method, path)
        assert res.status_code == 503, (path, res.status_code, res.data[:200])
        assert res.headers["Retry-After"].isdigit()
        assert res.get_json()["error"]["code"] == "database_unavailable"
    relay.restore()
    assert [(p, _call(client, m, p).status_code) for m, p in routes] == [(p, 200) for _, p in routes]


def test_db_start_keeps_its_port_through_time_wait():
    """A stopped server's closed connections linger in TIME_WAIT on its port; the port is still free
    for a new server (PostgreSQL listens with SO_REUSEADDR), so `db start` does not move."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    port = server.getsockname()[1]
    server.listen(1)
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first: its end of the connection goes to TIME_WAIT
    client.recv(1)
    client.close()
    server.close()
    assert cluster._port_free(port)
