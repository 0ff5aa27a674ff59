"""Handshake, START_API answer, current time, clientId rules (step 1) against the real ibapi client."""

from __future__ import annotations

import socket
import struct

from ibsim import IbSim


def test_start_api_answer_has_accounts_ids_and_farm_notices(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    assert client.of("managedAccounts") == [("DU111111",)]
    assert client.of("nextValidId") == [(1,)]
    eventually(lambda: {a[1] for a in client.errors()} >= {2104, 2106, 2158})
    assert client.serverVersion() == 157


def test_current_time_is_sim_time(sim: IbSim, connect, eventually) -> None:
    client = connect(1)
    client.reqCurrentTime()
    (epoch,) = eventually(lambda: client.of("currentTime"))[0]
    assert abs(epoch - sim.market.now_ns() // 1_000_000_000) <= 5


def test_client_id_in_use_gets_326_and_is_closed(sim: IbSim, connect, eventually) -> None:
    connect(7)
    second = connect(7, wait_ready=False)
    eventually(lambda: second.errors(326))
    eventually(lambda: second.of("connectionClosed"))
    assert not second.of("nextValidId")


def test_two_clients_at_once_and_disconnect_frees_the_id(sim: IbSim, connect, eventually) -> None:
    a, b = connect(1), connect(2)
    a.reqCurrentTime()
    b.reqCurrentTime()
    eventually(lambda: a.of("currentTime") and b.of("currentTime"))
    a.stop()
    eventually(lambda: 1 not in sim.gateway.sessions)
    again = connect(1)
    assert again.of("nextValidId")


def test_garbage_and_unknown_messages_do_not_kill_the_server(sim: IbSim, connect, eventually) -> None:
    with socket.create_connection(("127.0.0.1", sim.port), timeout=2) as raw:
        raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
    with socket.create_connection(("127.0.0.1", sim.port), timeout=2) as raw:
        raw.sendall(b"API\0" + struct.pack(">I", 9) + b"v100..157")
        raw.recv(100)
        for payload in (b"71\x002\x009\x00\x00", b"999\x001\x00", b"3\x00notanumber\x00", b"9\x008\x00"):
            raw.sendall(struct.pack(">I", len(payload)) + payload)
    client = connect(3)
    client.reqCurrentTime()
    eventually(lambda: client.of("currentTime"))
