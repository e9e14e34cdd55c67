"""The REST defects R5 found, replayed from its recorded seed against the real server.

R5 (seed 987066365, 10 trials of 1000 requests) got 11 answers of 500.  Each came from a
number read with `str.isdigit()` and then `int()`: `isdigit()` is true for '²' (and a
latin-1 header byte 0xb2 is '²'), which `int()` refuses, and `int()` refuses more than 4300
digits (Python's limit on str -> int), which a Content-Length of 5000 nines has.  The
requests are regenerated from (seed, trial, index) exactly as the campaign made them, and sent
over a raw socket to `serve()`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from reconciler.api.server import ApiServer, serve
from reconciler.lab.proc import free_ports
from reconciler.status.types import Snapshot
from reliability.common import httpfuzz
from reliability.common.campaign import trial_seed

SEED = 987066365
FOUND = [(0, 4), (0, 114), (0, 195), (0, 400), (0, 591), (0, 802), (0, 977), (2, 151), (2, 974)]
FOUND += [(7, 18), (9, 520)]


@pytest.fixture(scope="module")
def server() -> Iterator[ApiServer]:
    (port,) = free_ports(1)
    srv = serve(Snapshot, f"127.0.0.1:{port}")
    try:
        yield srv
    finally:
        srv.stop()


def replayed(seed: int, k: int, index: int) -> bytes:
    rng = random.Random(trial_seed(seed, k))
    for _ in range(index):
        httpfuzz.request(rng)
    return httpfuzz.request(rng)


def status(server: ApiServer, data: bytes) -> int | None:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return httpfuzz.send(host, int(port), data).status


@pytest.mark.parametrize(("k", "index"), FOUND)
def test_recorded_request_is_no_500(server: ApiServer, k: int, index: int) -> None:
    data = replayed(SEED, k, index)
    got = status(server, data)
    assert got is not None
    assert got != 500, data[:300]


@pytest.mark.parametrize(
    "target",
    [
        "/vm/query?vmid=%C2%B2",  # '²'
        "/volume/query?volumeid=%C2%B2",
        "/api/v1/events?limit=%C2%B2",
        "/api/v1/events?limit=" + "9" * 5000,
        "/vm/query?vmid=" + "9" * 5000,
    ],
)
def test_odd_numbers_in_the_query_are_400(server: ApiServer, target: str) -> None:
    data = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    assert status(server, data) == 400


def test_unicode_digits_are_not_ids(server: ApiServer) -> None:
    """'٣' is a digit to isdigit() and 3 to int(): the seed's ids are ASCII decimals."""
    data = b"GET /volume/query?volumeid=%D9%A3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert status(server, data) == 400


@pytest.mark.parametrize("length", [b"\xb2", b"9" * 5000, b"-1", b"1 2"])
def test_odd_content_lengths_get_an_answer(server: ApiServer, length: bytes) -> None:
    data = b"GET /vm/types HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n"
    assert status(server, data) == 200
