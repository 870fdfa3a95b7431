from __future__ import annotations

from bus.broker import make_broker


def test_every_server_of_a_comma_separated_bootstrap_list_is_a_server_of_its_own() -> None:
    broker = make_broker("127.0.0.1:39092, 127.0.0.1:39094,127.0.0.1:39096,", client_id="t")
    assert broker._connection_kwargs["bootstrap_servers"] == [
        "127.0.0.1:39092",
        "127.0.0.1:39094",
        "127.0.0.1:39096",
    ]


def test_producers_wait_for_every_in_sync_replica_and_are_idempotent() -> None:
    kwargs = make_broker("127.0.0.1:39092", client_id="t")._connection_kwargs
    assert (kwargs["acks"], kwargs["enable_idempotence"]) == ("all", True)
