"""deploy.aws.calls: one client per (profile, region, endpoint, service, configuration, hooks) in a process.

A client costs 15-40 ms to build, and a deploy asks for the same few many times; what must not change is
who sees a fault a test injects and whether the write counter hears every client."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.config import Config
from moto import mock_aws

from deploy.aws import calls
from deploy.config import EnvConfig

ENV = EnvConfig(name="local", region="us-east-1", endpoint_url="http://127.0.0.1:9")
MOCKED = EnvConfig(name="dev", region="us-east-1")


def test_the_same_client_is_handed_out_for_the_same_address_and_configuration() -> None:
    first = calls.client(ENV, "lambda")
    assert calls.client(ENV, "lambda") is first
    assert calls.client(ENV, "lambda", "us-east-1") is first
    assert calls.client(ENV, "s3") is not first
    assert calls.client(ENV, "lambda", "eu-west-1") is not first
    assert calls.client(ENV, "lambda", config=Config(read_timeout=5)) is not first
    assert calls.client(ENV, "lambda", config=Config(read_timeout=5)) is calls.client(
        ENV, "lambda", config=Config(read_timeout=5)
    )


def test_a_hook_blocks_clients_are_its_own_and_gone_after_it() -> None:
    outside = calls.client(ENV, "lambda")
    seen: list[tuple[str, Any]] = []
    with calls.client_hook(lambda service, made: seen.append((service, made))):
        inside = calls.client(ENV, "lambda")
        assert inside is not outside and calls.client(ENV, "lambda") is inside
        assert seen == [("lambda", inside)]  # the hook ran once, on the client the block uses
    assert calls.client(ENV, "lambda") is outside
    assert inside not in calls._clients.values()  # dropped when the block ended, not only never matched
    with calls.client_hook(lambda service, made: None):
        assert calls.client(ENV, "lambda") is not inside  # a new block never gets another's client


def test_a_cached_client_still_counts_its_writes() -> None:
    with mock_aws():
        lam = calls.client(MOCKED, "lambda")
        for _ in range(2):
            with calls.count_writes() as counted:
                assert calls.client(MOCKED, "lambda") is lam
                lam.list_functions()
                with pytest.raises(lam.exceptions.ResourceNotFoundException):
                    lam.delete_function(FunctionName="f")
            assert counted.operations() == ["DeleteFunction"]


def test_a_client_whose_block_ended_while_it_was_built_is_not_kept() -> None:
    """Another thread may still be building a client when the hook block that asked for it ends: the
    caller gets it, the cache does not keep it (its key names a hook no block holds any more)."""
    outer = calls.client_hook(lambda service, client: None)
    outer.__enter__()
    made: list[Any] = []

    def ends_the_outer_block(service: str, client: Any) -> None:
        made.append(client)
        outer.__exit__(None, None, None)

    with calls.client_hook(ends_the_outer_block):
        got = calls.client(ENV, "lambda")
        assert made == [got]
        assert got not in calls._clients.values()  # checked while the inner block still holds its hook
