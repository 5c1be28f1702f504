"""Waiting until a published version can take traffic: its ``State`` Active, and its provisioned
concurrency (when the settings ask for some) ``READY``.

PublishVersion answers while the version is still ``Pending``: Lambda is preparing it (with SnapStart
it runs the init and takes the snapshot then). An alias moved to a Pending version sends callers to a
version that cannot run yet, and one that ends ``Failed`` never will. botocore's
``published_version_active`` waiter (GetFunctionConfiguration with the version as Qualifier: Active
succeeds, Failed fails, Pending retries, every 5 s) is the rule; the loops here follow it with the
deploy's :class:`~deploy.aws.retry.RetryPolicy` (injectable clock and sleep, the deploy's deadline)
and keep ``StateReason`` in the error, which botocore's WaiterError drops.

Provisioned concurrency goes on the new *version*, not the alias: concurrency configured on an alias
follows the alias, so moving the alias first would start the warm-up only as callers arrive (cold
starts, the thing it is bought to avoid), and a config on the alias cannot be READY before the alias
points at the new version. Putting it on the version lets it be READY before the switch; once every
alias has moved, the old version's config is removed (it would bill for environments nobody calls),
and a restore (``deploy.aws.transaction``) removes the new version's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from deploy.aws.retry import RetryPolicy, call, error_code, error_message, next_poll
from deploy.errors import AttachError

#: ``published_version_active``'s delay between polls (botocore lambda waiters-2.json).
ACTIVE_POLL_S = 5.0


def wait_active(lam: Any, name: str, version: str, *, policy: RetryPolicy) -> Mapping[str, Any]:
    """Poll the published version until its State is Active; Failed (or the time bound) is an AttachError
    naming the function, the version and Lambda's StateReason."""
    policy = replace(policy, poll=ACTIVE_POLL_S)
    start = policy.clock()
    while True:
        config: Mapping[str, Any] = call(
            lam.get_function_configuration, what=name, policy=policy, FunctionName=name, Qualifier=version
        )
        state = config.get("State") or "Active"  # an API without states (old emulators) is Active
        if state == "Active":
            return config
        if state == "Failed":
            code = config.get("StateReasonCode") or "unknown"
            reason = config.get("StateReason") or ""
            raise AttachError(f"{name}: version {version} ended Failed ({code}){': ' + reason if reason else ''}")
        next_poll(policy, start, still=f"{name}: version {version} still {state}")


def provision(lam: Any, name: str, version: str, concurrency: int, *, policy: RetryPolicy) -> None:
    """Put ``concurrency`` warm environments on the version and wait until they are READY (FAILED, with
    its reason, or the time bound is an AttachError)."""
    call(
        lam.put_provisioned_concurrency_config,
        what=name,
        policy=policy,
        FunctionName=name,
        Qualifier=version,
        ProvisionedConcurrentExecutions=concurrency,
    )
    start = policy.clock()
    while True:
        got: Mapping[str, Any] = call(
            lam.get_provisioned_concurrency_config, what=name, policy=policy, FunctionName=name, Qualifier=version
        )
        status = got.get("Status")
        if status == "READY":
            return
        if status == "FAILED":
            raise AttachError(
                f"{name}: provisioned concurrency on version {version} FAILED: {got.get('StatusReason') or 'no reason'}"
            )
        next_poll(policy, start, still=f"{name}: provisioned concurrency on version {version} still {status}")


def release(lam: Any, name: str, version: str, *, policy: RetryPolicy) -> str | None:
    """Remove the version's provisioned concurrency; None when done (or there was none), else why not.
    Never raises: traffic has already moved, and a config left behind costs money, not correctness."""
    try:
        call(lam.delete_provisioned_concurrency_config, what=name, policy=policy, FunctionName=name, Qualifier=version)
    except ClientError as exc:
        if error_code(exc) == "ProvisionedConcurrencyConfigNotFoundException":
            return None
        return error_message(exc)
    except AttachError as exc:
        return str(exc)
    return None
