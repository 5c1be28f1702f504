"""Verify what is deployed: check what the ``live`` alias serves against the expected artifacts,
download the deployed bytes, refuse them unless they hash to the CodeSha256 Lambda reports, run
them in the sandbox and (``remote``) invoke the alias itself."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from deploy.artifact import LAYER_KEY_PREFIX, Artifact, hex_sha256, layer_key
from deploy.aws.deployed import http_get
from deploy.aws.publish import identity_from_description
from deploy.config import EnvConfig, Targets
from deploy.errors import VerifyError
from deploy.verify.extracted import ExtractionCache, ZipSource
from deploy.verify.isolation import require_trusted_layers
from deploy.verify.remote import MAX_FUNCTION_TIMEOUT_S, _with_remote, remote_check
from deploy.verify.results import FunctionVerify, VerifyReport, _report
from deploy.verify.reuse import RanLocally, reused
from deploy.verify.sandbox import (
    DEFAULT_TIMEOUT_S,
    OnResult,
    _functions_of,
    _Job,
    _run_jobs,
    _Tree,
    environment_sha256,
    find_runtime_python,
)
from deploy.verify.smoke import smoke_for


def _code_sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


@dataclass
class _Fetcher:
    env: EnvConfig
    bucket: str
    s3: Any
    lam: Any
    fetch: Callable[[str], bytes] | None
    dest: Path
    cache: dict[str, Path] = field(default_factory=dict)
    #: Zips this machine built (CodeSha256 → path): the same bytes as the deployed ones when their
    #: hash says so, which spares downloading a 40 MB layer right after uploading it.
    local: dict[str, Path] = field(default_factory=dict)
    #: Layer version ARN → (CodeSha256, get_layer_version's answer), read once per run.
    layers: dict[str, tuple[str, Any]] = field(default_factory=dict)

    def alias_layers(self, name: str, *, alias: str, layer_name: str) -> tuple[dict[str, Any], dict[str, str]]:
        """``name``'s configuration at ``alias`` and its layers (version ARN -> CodeSha256), refused
        unless every layer is one this project may run (``require_trusted_layers``)."""
        config = self.lam.get_function_configuration(FunctionName=name, Qualifier=alias)
        layer_arns = [layer["Arn"] for layer in config.get("Layers", [])]
        require_trusted_layers(
            self.env,
            function=name,
            layer_name=layer_name,
            function_arn=config.get("FunctionArn"),
            layer_arns=layer_arns,
        )
        return config, {arn: self.layer_sha(arn) for arn in layer_arns}

    def tree(
        self,
        held: contextlib.ExitStack[bool | None],
        cache: ExtractionCache,
        *,
        name: str,
        alias: str,
        code_sha: str,
        layer_shas: Mapping[str, str],
    ) -> _Tree:
        """The deployed bytes of ``name``'s ``alias`` (layer ARN -> CodeSha256 in ``layer_shas``), in use until
        ``held`` closes. Each zip is hashed while it is copied for extraction and refused unless it is the
        CodeSha256 Lambda reports (or its tree was extracted from such bytes and is unchanged since)."""
        opt, task = cache.lambda_trees(
            held,
            layers=[
                ZipSource(sha256=hex_sha256(sha), what=f"layer {arn} of {name}", path=partial(self.layer_zip, arn))
                for arn, sha in layer_shas.items()
            ],
            code=ZipSource(
                sha256=hex_sha256(code_sha),
                what=f"code of {name}",
                path=partial(self.function_zip, name, alias, code_sha),
            ),
        )
        return _Tree(task_root=task.path, opt=opt.path)

    def _local_copy(self, code_sha: str) -> Path | None:
        path = self.local.get(code_sha)
        if path is None or not path.is_file():
            return None
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        if base64.b64encode(digest.digest()).decode("ascii") != code_sha:
            return None  # changed since it was built: fetch what is deployed instead
        self.cache[code_sha] = path
        return path

    def _from_url(self, url: str | None) -> bytes | None:
        # The emulator's Locations name hosts it does not serve; go straight to our S3 copy.
        if not url or self.fetch is None or self.env.endpoint_url:
            return None
        try:
            return self.fetch(url)
        except (OSError, ValueError, http.client.HTTPException):
            return None

    def _from_s3(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError:
            return None
        return body

    def _store(self, code_sha: str, data: bytes, what: str) -> Path:
        if _code_sha(data) != code_sha:
            raise VerifyError(
                f"deployed zip for {what} does not match CodeSha256 {code_sha} (downloaded bytes hash to "
                f"{_code_sha(data)}); refusing to run it",
                hint=f"the S3 object in {self.bucket} was changed after the deploy; redeploy",
            )
        path = self.dest / f"{hex_sha256(code_sha)}.zip"
        path.write_bytes(data)
        self.cache[code_sha] = path
        return path

    def function_zip(self, name: str, qualifier: str, code_sha: str) -> Path:
        if code_sha in self.cache:
            return self.cache[code_sha]
        if (local := self._local_copy(code_sha)) is not None:
            return local
        location = self.lam.get_function(FunctionName=name, Qualifier=qualifier)["Code"].get("Location")
        data = self._from_url(location)
        if data is None or _code_sha(data) != code_sha:
            data = self._from_s3(f"lambda/function-{hex_sha256(code_sha)}.zip")
        if data is None:
            raise VerifyError(
                f"cannot download the deployed code of {name}: Code.Location failed and "
                f"s3://{self.bucket}/lambda/function-{hex_sha256(code_sha)}.zip is missing"
            )
        return self._store(code_sha, data, name)

    def layer_sha(self, arn: str) -> str:
        """The CodeSha256 Lambda reports for a layer version (what its bytes must hash to)."""
        if arn in self.layers:
            return self.layers[arn][0]
        # get_layer_version takes the unversioned ARN (any account's) plus the number; the emulator
        # implements it, unlike get_layer_version_by_arn.
        layer_arn, _, number = arn.rpartition(":")
        if not layer_arn or not number.isdigit():
            raise VerifyError(f"layer version ARN {arn!r} has no version number")
        info = self.lam.get_layer_version(LayerName=layer_arn, VersionNumber=int(number))
        code_sha = info.get("Content", {}).get("CodeSha256")
        if not code_sha:
            raise VerifyError(f"layer version {arn} reports no CodeSha256")
        self.layers[arn] = (code_sha, info)
        return str(code_sha)

    def layer_zip(self, arn: str) -> Path:
        """The layer version's bytes on this machine, checked against its CodeSha256 (only needed
        when its extracted tree is not cached)."""
        code_sha = self.layer_sha(arn)
        info = self.layers[arn][1]
        content = info.get("Content", {})
        if code_sha in self.cache:
            return self.cache[code_sha]
        if (local := self._local_copy(code_sha)) is not None:
            return local
        data = self._from_url(content.get("Location"))
        if data is None or _code_sha(data) != code_sha:
            data = None
            identity = identity_from_description(info.get("Description"))
            keys = [layer_key(identity)] if identity else []
            keys += self._layer_keys(content.get("CodeSize"))
            for key in dict.fromkeys(keys):
                candidate = self._from_s3(key)
                if candidate is not None and _code_sha(candidate) == code_sha:
                    data = candidate
                    break
                data = data or candidate
        if data is None:
            raise VerifyError(
                f"cannot download layer version {arn}: Content.Location failed and "
                f"no lambda/layer-*.zip in {self.bucket} matches it"
            )
        return self._store(code_sha, data, arn)

    def _layer_keys(self, size: int | None) -> list[str]:
        """Our layer objects whose size fits: hashing only those keeps the search cheap."""
        keys = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=LAYER_KEY_PREFIX):
            keys += [o["Key"] for o in page.get("Contents", []) if size is None or o.get("Size") == size]
        return keys


def _state_problems(
    cfg_alias: Mapping[str, Any],
    cfg_latest: Mapping[str, Any],
    layer_shas: Mapping[str, str],
    targets: Targets,
    expected_layer: Artifact | None,
    expected_function: Artifact | None,
) -> list[str]:
    problems = []
    if expected_function is not None:
        for label, cfg in ((targets.alias, cfg_alias), ("$LATEST", cfg_latest)):
            if cfg.get("CodeSha256") != expected_function.code_sha256:
                problems.append(
                    f"{label} serves code {cfg.get('CodeSha256')}, expected {expected_function.code_sha256} "
                    f"({expected_function.path.name})"
                )
    if expected_layer is not None:
        ours = [a for a in layer_shas if f":layer:{targets.layer_name}:" in a]
        if not ours:
            problems.append(f"{targets.alias} has no version of layer {targets.layer_name}")
        for arn in ours:
            if layer_shas[arn] != expected_layer.code_sha256:
                problems.append(
                    f"{targets.alias} uses {arn} with CodeSha256 {layer_shas[arn]}, "
                    f"expected {expected_layer.code_sha256}"
                )
        latest = [lay["Arn"] for lay in cfg_latest.get("Layers", [])]
        alias_layers = [lay["Arn"] for lay in cfg_alias.get("Layers", [])]
        if latest != alias_layers:
            problems.append(f"$LATEST layers {latest} differ from {targets.alias} layers {alias_layers}")
    return problems


def verify_deployed(
    env: EnvConfig,
    targets: Targets,
    *,
    expected_layer: Artifact | None = None,
    expected_function: Artifact | None = None,
    python: Path | None = None,
    remote: bool | None = None,
    fetch: Callable[[str], bytes] | None = http_get,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_result: OnResult | None = None,
    trees: ExtractionCache | None = None,
    ran_locally: RanLocally | None = None,
    workers: int | None = None,
    qualifiers: Mapping[str, str] | None = None,
) -> VerifyReport:
    """Check what the alias serves, run those exact bytes in the sandbox, and (``remote``) invoke it.

    ``qualifiers``: function name → the version to check instead of the alias (a gradual rollout's new
    version, which the alias serves only a share of traffic until the rollout ends).

    ``trees``: extracted zips cached by sha256 (``deploy.verify.extracted``); a tree extracted from
    bytes that hashed to this CodeSha256, unchanged since, is those bytes, so nothing is fetched or
    hashed again for it. ``ran_locally``: this run's local verify; on the emulator a function proven
    to serve exactly what it ran is not run again (``deploy.verify.reuse``).
    """
    from deploy.aws.calls import client

    functions = _functions_of(targets)
    cases = smoke_for(env, functions)
    python = python or find_runtime_python(env.python_version)
    remote = env.verify.remote if remote is None else remote
    lam = client(env, "lambda")
    s3 = client(env, "s3")
    states: dict[str, FunctionVerify] = {}
    with tempfile.TemporaryDirectory(prefix="verify-") as tmp, contextlib.ExitStack() as held:
        root = Path(tmp)
        (root / "zips").mkdir()
        cache = trees or ExtractionCache(root=root / "extracted")
        built = {a.code_sha256: a.path for a in (expected_layer, expected_function) if a is not None}
        fetcher = _Fetcher(env=env, bucket=targets.bucket, s3=s3, lam=lam, fetch=fetch, dest=root / "zips", local=built)
        by_shas: dict[tuple[str, ...], _Tree] = {}
        jobs: list[_Job] = []
        for fn in functions:
            qualifier = (qualifiers or {}).get(fn.name, targets.alias)
            cfg_alias, layer_shas = fetcher.alias_layers(fn.name, alias=qualifier, layer_name=targets.layer_name)
            layer_arns = tuple(layer_shas)  # in the configuration's order: Lambda refuses a layer listed twice
            cfg_latest = lam.get_function_configuration(FunctionName=fn.name)
            problems = _state_problems(cfg_alias, cfg_latest, layer_shas, targets, expected_layer, expected_function)
            if problems:
                states[fn.key] = FunctionVerify(
                    key=fn.key,
                    name=fn.name,
                    import_ms=None,
                    results=(),
                    ok=False,
                    error="; ".join(problems),
                    code_sha256=cfg_alias.get("CodeSha256"),
                    layers=layer_arns,
                )
                continue
            code_sha = cfg_alias["CodeSha256"]
            target = replace(fn, handler=cfg_alias.get("Handler") or fn.handler)
            environment = dict((cfg_alias.get("Environment") or {}).get("Variables") or {})
            memory_mb = int(cfg_alias.get("MemorySize") or 128)
            standing = reused(
                env,
                ran_locally,
                key=fn.key,
                layer_arns=layer_arns,
                code_sha256=code_sha,
                layer_code_sha256=tuple(layer_shas.values()),
                environment_sha256=environment_sha256(env, target=target, environment=environment, memory_mb=memory_mb),
            )
            if standing is not None:
                states[fn.key] = standing
                continue
            tree_key = (code_sha, *layer_shas.values())
            if tree_key not in by_shas:
                by_shas[tree_key] = fetcher.tree(
                    held, cache, name=fn.name, alias=qualifier, code_sha=code_sha, layer_shas=layer_shas
                )
            jobs.append(
                _Job(
                    target=target,
                    tree=by_shas[tree_key],
                    cases=cases[fn.key],
                    environment=environment,
                    memory_mb=memory_mb,
                    function_timeout_s=float(cfg_alias.get("Timeout") or MAX_FUNCTION_TIMEOUT_S),
                    function_arn=cfg_alias.get("FunctionArn"),
                    code_sha256=code_sha,
                    layers=layer_arns,
                    layer_code_sha256=tuple(layer_shas.values()),
                )
            )
        sandboxed = (
            {
                r.key: r
                for r in _run_jobs(
                    env,
                    jobs,
                    python=python,
                    root=root,
                    timeout_s=timeout_s,
                    on_result=None if remote else on_result,
                    workers=workers,
                )
            }
            if jobs
            else {}
        )
    results: list[FunctionVerify] = []
    for fn in functions:
        if fn.key in states:
            results.append(states[fn.key])
            if on_result is not None:
                on_result(states[fn.key])
            continue
        result = sandboxed[fn.key]
        if remote:
            if result.ok:
                job = next(j for j in jobs if j.target.key == fn.key)
                checked = remote_check(
                    env,
                    fn,
                    job.cases,
                    job.environment,
                    alias=(qualifiers or {}).get(fn.name, targets.alias),
                    function_timeout_s=job.function_timeout_s or MAX_FUNCTION_TIMEOUT_S,
                )
                result = _with_remote(result, checked)
            if on_result is not None:
                on_result(result)
        results.append(result)
    return _report(env, "deployed", results, python)
