"""Prove that functions import and answer: in a Lambda-like sandbox, and on real AWS by invoking them.

The sandbox runs the runtime's own interpreter (``python3.12 -I -S``) in a fresh process per
function, with only the extracted function zip (the task root) and layer zip(s) (``/opt``) on
``sys.path`` in Lambda's order — so a dependency missing from the layer, a module left out of the
function zip, a handler typo or a wrong-platform extension fails here as it would on Lambda.

``verify_local`` runs the artifacts just built; ``verify_deployed`` first checks what the ``live``
alias serves against the expected artifacts, downloads the deployed bytes and refuses to run them
unless they hash to the CodeSha256 Lambda reports, then runs them; with ``remote`` it also invokes
the alias itself. Handler failures come back as a report with ``ok=False`` (the task turns that
into a ``VerifyError`` and rolls back); setup problems raise ``VerifyError`` straight away.

Modules: ``smoke`` (events and expectations), ``results`` (the report dataclasses), ``sandbox``
(runtime interpreter, extraction, environment, runs; ``sandbox_runner`` is the stdlib-only script
the runtime's interpreter executes), ``deployed`` (the deployed bytes and state), ``remote`` (invoke
and log scan on real AWS), ``local`` (``verify --local`` without AWS, and the configuration the deploy's
local verify reads), ``reuse`` (when the emulator's deployed verify stands on this run's local one).
This package re-exports what the task flows (deploy/run/) and tests call.
"""

from deploy.aws.deployed import HTTP_TIMEOUT_S, http_get
from deploy.verify.deployed import verify_deployed
from deploy.verify.remote import LOG_LOOKBACK_MS, remote_check
from deploy.verify.results import FunctionVerify, Mode, SmokeResult, VerifyReport
from deploy.verify.sandbox import (
    _ELF_MACHINES,
    DEFAULT_TIMEOUT_S,
    MAX_WORKERS,
    RUNNER,
    RUNTIME_PROVIDED,
    _python_version_of,
    find_runtime_python,
    verify_local,
)
from deploy.verify.smoke import EXPECT_KEYS, check_expect, smoke_cases, smoke_for, validate_expect

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "EXPECT_KEYS",
    "HTTP_TIMEOUT_S",
    "LOG_LOOKBACK_MS",
    "MAX_WORKERS",
    "RUNNER",
    "RUNTIME_PROVIDED",
    "_ELF_MACHINES",
    "FunctionVerify",
    "Mode",
    "SmokeResult",
    "VerifyReport",
    "_python_version_of",
    "check_expect",
    "find_runtime_python",
    "http_get",
    "remote_check",
    "smoke_cases",
    "smoke_for",
    "validate_expect",
    "verify_deployed",
    "verify_local",
]
