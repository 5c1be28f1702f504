"""The workflows call the same Nox sessions and Invoke tasks a developer runs, and are locked down.

The first half checks the real ``.github/workflows`` against ``nox -l``, the Invoke
collection, pyproject.toml and invoke.yaml; the second half feeds the checker broken
workflows to show each check can fail.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nox.project
import pytest
import yaml

from deploy.errors import ConfigError
from tests import workflows as wf

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
CHECKOUT = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2"


@pytest.fixture(scope="module")
def sessions() -> dict[str, wf.NoxSession]:
    return wf.nox_sessions(ROOT)


@pytest.fixture(scope="module")
def tasks() -> dict[str, dict[str, bool]]:
    return wf.invoke_tasks(ROOT)


@pytest.fixture(scope="module")
def ci() -> wf.Workflow:
    return wf.load_workflow(WORKFLOWS / "ci.yml")


@pytest.fixture(scope="module")
def deploy() -> wf.Workflow:
    return wf.load_workflow(WORKFLOWS / "deploy.yml")


@pytest.fixture(scope="module")
def both(ci: wf.Workflow, deploy: wf.Workflow) -> list[wf.Workflow]:
    return [ci, deploy]


def _deploy_settings() -> Mapping[str, Any]:
    data = yaml.safe_load((ROOT / "invoke.yaml").read_text(encoding="utf-8"))
    settings: Mapping[str, Any] = data["deploy"]
    return settings


# --------------------------------------------------------------------------- the real workflows


def test_on_key_survives_yaml_1_1(ci: wf.Workflow, deploy: wf.Workflow) -> None:
    assert set(ci.data["on"]) == {"push", "pull_request"}
    assert set(deploy.data["on"]) == {"push", "workflow_dispatch"}
    assert all(isinstance(key, str) for key in ci.data)  # the YAML 1.1 `True` key is gone


def test_every_run_step_is_a_session_a_task_or_allowed_setup(
    both: list[wf.Workflow], sessions: dict[str, wf.NoxSession], tasks: dict[str, dict[str, bool]]
) -> None:
    problems = [p for w in both for p in wf.check_commands(w, sessions, tasks)]
    assert problems == []


def test_negated_flags_are_known_only_where_invoke_offers_them(tasks: dict[str, dict[str, bool]]) -> None:
    assert tasks["build-layer"]["no-remote-cache"] is False  # remote_cache defaults to True
    assert "no-json" not in tasks["deploy"]  # json defaults to False: Invoke has no --no-json


def test_ci_runs_exactly_what_a_bare_nox_runs(ci: wf.Workflow, sessions: dict[str, wf.NoxSession]) -> None:
    selected = {name for name, s in sessions.items() if s.selected}
    assert set(wf.sessions_run(ci)) == selected


def test_ci_test_matrix_is_the_pyproject_python_versions(ci: wf.Workflow) -> None:
    # The noxfile parametrizes `test` from these classifiers; CI must follow, not drift.
    versions = nox.project.python_versions(nox.project.load_toml(ROOT / "pyproject.toml"))
    run = wf.sessions_run(ci)
    assert {name for name in run if name.startswith("test-")} == {f"test-{v}" for v in versions}
    for version in versions:
        assert version in run[f"test-{version}"]


def test_each_session_runs_where_its_python_is_set_up(
    both: list[wf.Workflow], sessions: dict[str, wf.NoxSession]
) -> None:
    assert [p for w in both for p in wf.check_session_pythons(w, sessions)] == []


def test_every_action_is_pinned_to_a_commit_with_its_tag(both: list[wf.Workflow]) -> None:
    assert [p for w in both for p in wf.check_pinned_uses(w)] == []
    assert all("uses:" in w.text for w in both)


def test_no_permissions_by_default_timeouts_and_no_persisted_token(both: list[wf.Workflow]) -> None:
    assert [p for w in both for p in wf.check_hardening(w)] == []


ENV_EXPR = "${{ github.event_name == 'workflow_dispatch' && 'production' || 'staging' }}"
AWS_CREDENTIALS = "aws-actions/configure-aws-credentials"


def _first_credentials(job: Mapping[str, Any]) -> int:
    index = wf.step_index(job, wf.uses(AWS_CREDENTIALS))
    assert index is not None, "the job assumes no role"
    return index


def test_id_token_write_only_in_the_infra_and_deploy_jobs_behind_their_own_environments(
    both: list[wf.Workflow], deploy: wf.Workflow
) -> None:
    """Two jobs mint tokens, each in its own GitHub environment: two OIDC subjects, one per role."""
    assert wf.jobs_with_permission(both, "id-token", "write") == ["deploy.yml:infra", "deploy.yml:deploy"]
    infra_envs = wf.resolve(deploy.jobs["infra"]["environment"], {}, {})
    deploy_envs = wf.resolve(deploy.jobs["deploy"]["environment"], {}, {})
    assert infra_envs == tuple(f"{env}-infra" for env in deploy_envs) == ("production-infra", "staging-infra")
    assert not set(infra_envs) & set(deploy_envs)
    assert [j for w in both for j in wf.jobs_with_permission([w], "contents", "write")] == []


def test_the_oidc_subjects_are_the_ones_the_roles_trust(deploy: wf.Workflow) -> None:
    """The module's defaults (infra environment `<env>-infra`, job_workflow_ref of this file) match the workflow."""
    variables = (ROOT / "infra/terraform/modules/github-oidc-deploy-role/variables.tf").read_text(encoding="utf-8")
    main = (ROOT / "infra/terraform/modules/github-oidc-deploy-role/main.tf").read_text(encoding="utf-8")
    assert f'default     = "{deploy.path.relative_to(ROOT).as_posix()}"' in variables  # deploy_workflow
    pin = variables[variables.index('variable "pin_job_workflow_ref"') :]
    assert "default     = true" in pin[: pin.index("}")]
    assert 'coalesce(var.infra_environment, "${var.environment}-infra")' in main
    assert deploy.jobs["infra"]["environment"] == ENV_EXPR.replace("'production'", "'production-infra'").replace(
        "'staging'", "'staging-infra'"
    )


def test_the_job_that_builds_mints_no_token_and_hands_over_a_digest(deploy: wf.Workflow) -> None:
    build = deploy.jobs["build"]
    assert "id-token" not in build["permissions"]
    assert [
        j
        for j, job in deploy.jobs.items()
        if any(wf.runs("inv", t)(s) for s in job["steps"] for t in ("build-layer", "build-function"))
    ] == ["build"]
    steps = build["steps"]
    digest_at = wf.step_index(build, wf.runs("python3", "-m", "deploy.ci_artifacts", "digest", ".build"))
    upload_at = wf.step_index(build, wf.uses("actions/upload-artifact"))
    built_at = max(i for i, s in enumerate(steps) if wf.runs("inv")(s))
    assert digest_at is not None and upload_at is not None and built_at < digest_at < upload_at
    assert steps[digest_at]["id"] == "digest"
    assert build["outputs"]["artifacts"] == "${{ steps.digest.outputs.artifacts }}"
    upload = steps[upload_at]["with"]
    assert upload["include-hidden-files"] is True and upload["if-no-files-found"] == "error"
    assert sorted(upload["path"].split()) == sorted(
        f".build/{folder}/*.{ext}" for folder in ("layers", "functions") for ext in ("zip", "json")
    )


def test_the_deploy_job_checks_every_artifact_before_any_aws_call(deploy: wf.Workflow) -> None:
    job = deploy.jobs["deploy"]
    assert set(job["needs"]) == {"platform", "build", "infra"}
    download_at = wf.step_index(job, wf.uses("actions/download-artifact"))
    check_at = wf.step_index(job, wf.runs("python3", "-m", "deploy.ci_artifacts", "check", ".build"))
    assert download_at is not None and check_at is not None
    assert download_at < check_at < _first_credentials(job)
    check = job["steps"][check_at]
    assert check["env"] == {"BUILT": "${{ needs.build.outputs.artifacts }}"}
    assert wf.split_command(check["run"])[-1] == "$BUILT"
    assert job["steps"][download_at]["with"]["path"] == ".build"
    upload = next(s for s in deploy.jobs["build"]["steps"] if wf.uses("actions/upload-artifact")(s))
    assert job["steps"][download_at]["with"]["name"] == upload["with"]["name"]


def test_deploys_of_one_environment_are_serialised_and_never_cancelled(deploy: wf.Workflow) -> None:
    concurrency = deploy.data["concurrency"]
    assert concurrency["cancel-in-progress"] is False
    assert ENV_EXPR.removeprefix("${{").removesuffix("}}").strip() in concurrency["group"]
    # A job-level group inside the run could still cancel a job of a running deploy.
    assert [j for j, job in deploy.jobs.items() if "concurrency" in job] == []
    targets = wf.resolve(ENV_EXPR, {}, {})
    assert set(targets) == {"staging", "production"} and set(targets) <= set(_deploy_settings()["environments"])
    for job_id in ("build", "infra", "deploy"):
        assert deploy.jobs[job_id]["env"]["ENV"] == ENV_EXPR
    assert deploy.jobs["deploy"]["environment"] == ENV_EXPR


def test_deploy_python_is_the_lambda_runtime(deploy: wf.Workflow) -> None:
    # verify runs the deployed bytes with the runtime's interpreter, and the build job must compute the
    # deploy job's layer identity (same interpreter), so both jobs set it up.
    settings = _deploy_settings()
    assert wf.sessions_run(deploy) == {}  # deploy calls inv directly, no nox session
    for job_id in ("build", "deploy"):
        job = deploy.jobs[job_id]
        for env in wf.resolve(job["env"]["ENV"], {}, {}):
            runtime = settings["environments"][env].get("runtime", settings["runtime"])
            assert [runtime.removeprefix("python")] == wf._setup_python_versions(job)
    assert deploy.jobs["build"]["runs-on"] == deploy.jobs["deploy"]["runs-on"]


def test_each_job_assumes_only_its_own_role(deploy: wf.Workflow) -> None:
    """The infrastructure role applies Terraform in one job; the deploy role deploys in another."""
    roles = {
        job_id: [s["with"]["role-to-assume"] for s in job["steps"] if wf.uses(AWS_CREDENTIALS)(s)]
        for job_id, job in deploy.jobs.items()
    }
    assert roles == {
        "platform": [],
        "build": [],
        "infra": ["${{ vars.AWS_INFRA_ROLE_ARN }}"],
        "deploy": ["${{ vars.AWS_DEPLOY_ROLE_ARN }}"],
    }
    for job_id in ("infra", "deploy"):
        job = deploy.jobs[job_id]
        credentials = job["steps"][_first_credentials(job)]
        assert credentials["with"]["aws-region"] == "${{ vars.AWS_REGION }}"
        last_inv = max(i for i, s in enumerate(job["steps"]) if wf.runs("inv")(s))
        assert _first_credentials(job) < last_inv
    assert "arn:aws" not in deploy.text
    assert "secrets." not in deploy.text


@pytest.mark.parametrize("job_id", ["build", "infra", "deploy"])
def test_tooling_is_installed_from_the_hashed_lock_before_any_credentials(deploy: wf.Workflow, job_id: str) -> None:
    job = deploy.jobs[job_id]
    runs = [str(s.get("run", "")) for s in job["steps"]]
    install_at = runs.index("python -m pip install --require-hashes --no-deps -r requirements/deploy.txt")
    assert sum("pip install" in r for r in runs) == 1  # nothing else is installed next to the roles
    if job_id != "build":
        assert install_at < _first_credentials(job)


@pytest.mark.parametrize("job_id", ["infra", "deploy"])
def test_docker_is_unreachable_before_credentials_in_jobs_that_run_third_party_code(
    deploy: wf.Workflow, job_id: str
) -> None:
    """The provider (infra) and the layer's code in verify's jail (deploy) run next to the credentials."""
    job = deploy.jobs[job_id]
    at = [wf.step_index(job, wf.runs(*command)) for command in wf.STOP_DOCKER]
    assert None not in at
    assert at == sorted(at) and at[-1] < _first_credentials(job)  # type: ignore[operator]


def test_the_build_job_runs_verify_local_on_what_it_hands_over(deploy: wf.Workflow) -> None:
    """Offline (no id-token, no role in the job), after both builds, before the digest and the upload,
    jailed by bwrap; the deploy job deploys exactly those zips and builds nothing."""
    build = deploy.jobs["build"]
    verify_at = wf.step_index(build, wf.runs("inv", "verify", "--local", "--env", "$ENV"))
    assert verify_at is not None
    built_at = [wf.step_index(build, wf.runs("inv", task)) for task in ("build-layer", "build-function")]
    digest_at = wf.step_index(build, wf.runs("python3", "-m", "deploy.ci_artifacts", "digest", ".build"))
    upload_at = wf.step_index(build, wf.uses("actions/upload-artifact"))
    assert None not in built_at and digest_at is not None and upload_at is not None
    assert max(built_at) < verify_at < digest_at < upload_at  # type: ignore[type-var]
    assert "id-token" not in build["permissions"]
    assert not any(wf.uses(AWS_CREDENTIALS)(s) for s in build["steps"])
    # The function map is Terraform's var.functions, evaluated by terraform itself (no state).
    terraform_at = wf.step_index(build, wf.uses("hashicorp/setup-terraform"))
    assert terraform_at is not None and terraform_at < min(built_at)  # type: ignore[type-var]
    runs = [str(s.get("run", "")) for s in build["steps"]]
    assert runs.index("sudo apt-get update -qq") < runs.index("sudo apt-get install -y bubblewrap") < verify_at
    assert runs.index(" ".join(wf.ALLOW_USER_NAMESPACES)) < verify_at
    # Nowhere else: the deploy job runs `inv deploy --prebuilt`, which verifies before and after the upload.
    assert [j for j, job in deploy.jobs.items() if any(wf.runs("inv", "verify")(s) for s in job["steps"])] == ["build"]
    deploy_step = next(s for s in deploy.jobs["deploy"]["steps"] if wf.runs("inv", "deploy")(s))
    assert "--prebuilt" in wf.split_command(deploy_step["run"])


def test_deploy_installs_bubblewrap_before_any_credentials(deploy: wf.Workflow) -> None:
    """verify jails the sandbox with bwrap; without it the deploy stops (or, worse, someone opts out)."""
    job = deploy.jobs["deploy"]
    runs = [str(s.get("run", "")) for s in job["steps"]]
    first_role = _first_credentials(job)
    assert runs.index("sudo apt-get update -qq") < runs.index("sudo apt-get install -y bubblewrap") < first_role
    assert runs.index(" ".join(wf.ALLOW_USER_NAMESPACES)) < first_role
    assert sum("apt-get" in r for r in runs) == 2  # refresh the lists, install bubblewrap: nothing else


def test_deploy_builds_applies_infra_deploys_then_reports(deploy: wf.Workflow) -> None:
    words = {job: [wf.split_command(s.command) for s in wf.run_steps(deploy) if s.job == job] for job in deploy.jobs}
    assert [w[:2] for w in words["build"] if w[0] == "inv"] == [
        ["inv", "build-layer"],
        ["inv", "build-function"],
        ["inv", "verify"],
    ]
    applies = [w for w in words["infra"] if w[0] == "inv"]
    assert [w[:2] for w in applies] == [["inv", "infra.apply"], ["inv", "infra.apply"]]
    # A plan that destroys a function is applied only by a manual run that asked for it.
    steps = {s["name"]: s for s in deploy.jobs["infra"]["steps"] if "run" in s}
    guarded = [s for s in steps.values() if "--allow-destroy" in s["run"]]
    assert [s["if"] for s in guarded] == ["${{ inputs.allow_destroy }}"]
    assert [s["if"] for s in steps.values() if s["run"].startswith("inv infra.apply") and s not in guarded] == [
        "${{ !inputs.allow_destroy }}"
    ]
    assert deploy.data["on"]["workflow_dispatch"]["inputs"]["allow_destroy"]["default"] is False
    assert [w[:2] for w in words["deploy"] if w[0] == "inv"] == [["inv", "deploy"]]
    deploy_words = next(w for w in words["deploy"] if w[:2] == ["inv", "deploy"])
    assert "--skip-infra" in deploy_words  # the infra job applied it, with its own role
    assert "--prebuilt" in deploy_words  # the build job's checked zips, nothing built next to the role
    report = Path(deploy_words[deploy_words.index("--report-file") + 1])
    # `--report-file X.json` also writes X.md, which the last step shows on the run's page.
    assert words["deploy"][-1] == ["cat", str(report.with_suffix(".md")), ">>", wf.STEP_SUMMARY]


def test_ci_tooling_is_installed_from_its_hashed_lock(ci: wf.Workflow) -> None:
    runs = [s.command for s in wf.run_steps(ci) if "pip install" in s.command]
    assert runs and set(runs) == {"python -m pip install --require-hashes --no-deps -r requirements/ci-tools.txt"}
    assert "requirements/ci-tools.txt" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_actionlint_is_upstreams_release_checked_before_it_runs(ci: wf.Workflow) -> None:
    pins = wf.pinned_downloads(ROOT)
    assert wf.check_downloads(ci, pins) == []
    job = ci.jobs["workflows"]
    curl = next(s["run"] for s in job["steps"] if wf.runs("curl")(s))
    url = wf.split_command(curl)[-1]
    assert url.startswith("https://github.com/rhysd/actionlint/releases/download/v")  # upstream, not a fork
    assert url.rsplit("/", 1)[-1] in pins
    session_at = wf.step_index(job, wf.runs("nox", "-s", "workflows"))
    tar_at = wf.step_index(job, wf.runs("sudo", "tar"))
    assert tar_at is not None and session_at is not None and tar_at < session_at


# --------------------------------------------------------------------------- the checker can fail

FAKE_SESSIONS = {
    "lint": wf.NoxSession(name="lint", python="3.11", selected=True),
    "test-3.12": wf.NoxSession(name="test-3.12", python="3.12", selected=True),
}
FAKE_TASKS = {"deploy": {"env": True, "json": False}}


def _workflow(tmp_path: Path, body: str) -> wf.Workflow:
    path = tmp_path / "w.yml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return wf.load_workflow(path)


def _one_step(
    tmp_path: Path, run: str, step_env: Mapping[str, str] | None = None, matrix: Mapping[str, Any] | None = None
) -> list[str]:
    job: dict[str, Any] = {"runs-on": "ubuntu-24.04", "timeout-minutes": 5}
    if matrix is not None:
        job["strategy"] = {"matrix": dict(matrix)}
    job["steps"] = [{"run": run, **({"env": dict(step_env)} if step_env else {})}]
    body = yaml.safe_dump({"on": "push", "permissions": {}, "jobs": {"j": job}}, sort_keys=False)
    return wf.check_commands(_workflow(tmp_path, body), FAKE_SESSIONS, FAKE_TASKS)


@pytest.mark.parametrize(
    ("run", "needle"),
    [
        ("nox -s lint && nox -s test-3.12", "chains commands with &&"),
        ("inv deploy --env staging || true", "chains commands with ||"),
        ("nox -s lint; echo done", "chains commands with ;"),
        ("nox -s nope", "nox session 'nope' does not exist"),
        ("inv publish --env staging", "inv task 'publish' does not exist"),
        ("inv deploy --env staging --force", "has no option --force"),
        ("inv deploy -e staging", "use long --options"),
        ("inv deploy --env", "needs a value"),
        ("python -m pip install requests", "installs requests by name"),
        ('python -m pip install "nox>=2024.10" uv', "installs nox, uv by name; install a hash-pinned lock"),
        ("python -m pip install -r requirements/deploy.txt", "without --require-hashes"),
        ("python -m pip install --require-hashes -r requirements.txt", "only requirements/ci-tools.txt, requirements/"),
        ("sudo systemctl stop docker", "is not a nox session"),
        ("curl --fail --silent --show-error --location --remote-name http://x/a.tgz", "is not a nox session"),
        ("sha256sum --check --strict elsewhere.sha256", "is not a nox session"),
        ("sudo tar -xzf a.tgz -C /usr/bin actionlint", "is not a nox session"),
        ("curl https://example.invalid/x.sh", "is not a nox session"),
        ('cat secrets.txt >> "$GITHUB_STEP_SUMMARY"', "is not a nox session"),
        ("echo '${{ github.head_ref }}'", "interpolates an expression"),
        ("nox -s lint\nnox -s test-3.12\n", "runs several lines"),
        ("sudo apt-get install -y bubblewrap curl", "apt-get installs curl; only bubblewrap are allowed"),
        ("sudo sysctl -w kernel.unprivileged_userns_clone=1", "is not a nox session"),
    ],
)
def test_bad_run_steps_are_reported(tmp_path: Path, run: str, needle: str) -> None:
    problems = _one_step(tmp_path, run)
    assert len(problems) == 1
    assert needle in problems[0]
    assert "w.yml: job 'j' step 1" in problems[0]


@pytest.mark.parametrize(
    "run",
    [
        "nox -s lint",
        'inv deploy --env "$ENV" --json',
        "inv deploy --env=staging",
        "python -m pip install --require-hashes --no-deps -r requirements/ci-tools.txt",
        'python3 -m deploy.ci_artifacts digest .build >> "$GITHUB_OUTPUT"',
        'python3 -m deploy.ci_artifacts check .build "$BUILT"',
        "sudo systemctl mask --now docker.socket docker.service",
        "test ! -e /run/docker.sock",
        "python -m pip install --require-hashes --no-deps -r requirements/deploy.txt",
        'cat report.md >> "$GITHUB_STEP_SUMMARY"',
        "sudo apt-get install -y bubblewrap",
        "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
    ],
)
def test_good_run_steps_pass(tmp_path: Path, run: str) -> None:
    assert _one_step(tmp_path, run) == []


def test_session_from_matrix_through_env_is_resolved(tmp_path: Path) -> None:
    matrix = {"session": ["lint", "test-3.11"]}
    env = {"SESSION": "${{ matrix.session }}"}
    problems = _one_step(tmp_path, 'nox -s "$SESSION"', step_env=env, matrix=matrix)
    assert problems == ["w.yml: job 'j' step 1: nox session 'test-3.11' does not exist (nox -l: lint, test-3.12)"]


def test_session_needing_a_python_the_job_lacks_is_reported(tmp_path: Path) -> None:
    body = """\
        on: push
        permissions: {}
        jobs:
          j:
            timeout-minutes: 5
            strategy: {matrix: {include: [{session: test-3.12, python: "3.11"}]}}
            steps:
              - uses: actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065 # v5.6.0
                with: {python-version: "${{ matrix.python }}"}
              - run: nox -s "$SESSION"
                env: {SESSION: "${{ matrix.session }}"}
        """
    workflow = _workflow(tmp_path, body)
    assert wf.sessions_run(workflow) == {"test-3.12": ("3.11",)}
    assert wf.check_session_pythons(workflow, FAKE_SESSIONS) == [
        "w.yml: session 'test-3.12' needs Python 3.12 but its job sets up 3.11"
    ]


@pytest.mark.parametrize(
    "uses",
    [
        "actions/checkout@v4",
        "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683",
        "actions/checkout@11bd719 # v4.2.2",
        "actions/checkout@main # v4",
    ],
)
def test_unpinned_actions_are_reported(tmp_path: Path, uses: str) -> None:
    workflow = _workflow(tmp_path, f"on: push\njobs:\n  j:\n    steps:\n      - uses: {uses}\n")
    assert wf.check_pinned_uses(workflow) == [f"w.yml:5: '- uses: {uses}' is not `owner/repo@<40-hex sha> # vX.Y.Z`"]


def test_pinned_and_local_actions_pass(tmp_path: Path) -> None:
    body = f"on: push\njobs:\n  j:\n    steps:\n      - uses: {CHECKOUT}\n      - uses: ./.github/actions/x\n"
    assert wf.check_pinned_uses(_workflow(tmp_path, body)) == []


def test_missing_hardening_is_reported(tmp_path: Path) -> None:
    body = f"""\
        on: push
        permissions: write-all
        jobs:
          j:
            steps:
              - uses: {CHECKOUT}
        """
    workflow = _workflow(tmp_path, body)
    assert wf.check_hardening(workflow) == [
        "w.yml: top-level `permissions: {}` is missing",
        "w.yml: job 'j' has no timeout-minutes",
        "w.yml: job 'j' step 1: checkout persists credentials",
    ]
    assert wf.jobs_with_permission([workflow], "id-token", "write") == ["w.yml:j"]


def test_broken_workflow_file_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text("jobs: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yml: cannot read workflow"):
        wf.load_workflow(path)
    path.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yml: a workflow must be a mapping"):
        wf.load_workflow(path)


def test_expression_results_and_matrix_values_resolve() -> None:
    expr = "${{ github.event_name == 'workflow_dispatch' && 'production' || 'staging' }}"
    assert wf.resolve("$ENV", {"ENV": expr}, {}) == ("production", "staging")
    assert wf.resolve("${S}", {"S": "${{ matrix.session }}"}, {"session": "lint"}) == ("lint",)
    assert wf.resolve("$UNSET", {}, {}) == ("$UNSET",)
    job = {"strategy": {"matrix": {"a": [1, 2], "b": ["x"], "include": [{"a": 3}]}}}
    assert wf.matrix_combinations(job) == [{"a": "1", "b": "x"}, {"a": "2", "b": "x"}, {"a": "3"}]


def test_deploy_runs_on_the_runner_of_the_functions_architecture(deploy: wf.Workflow) -> None:
    """The deploy job's runner comes from the platform job, which reads the env's tfvars (Terraform's source)."""
    jobs = deploy.data["jobs"]
    for job_id in ("build", "deploy"):  # the build's bytecode and native wheels are for the same host
        assert "platform" in jobs[job_id]["needs"]
        assert jobs[job_id]["runs-on"] == "${{ needs.platform.outputs.runner }}"
    assert jobs["platform"]["env"]["ENV"] == jobs["deploy"]["env"]["ENV"]
    steps = [s.get("run", "") for s in jobs["platform"]["steps"]]
    assert 'python3 -m deploy.ci_runner "$ENV" >> "$GITHUB_OUTPUT"' in steps
    assert "id-token" not in jobs["platform"].get("permissions", {})


def test_runner_follows_the_tfvars_architecture(tmp_path: Path) -> None:
    from deploy import ci_runner
    from deploy.errors import ConfigError

    tf = tmp_path / "infra" / "terraform"
    (tf / "envs").mkdir(parents=True)
    (tf / "variables.tf").write_text('variable "architecture" {\n  type    = string\n  default = "x86_64"\n}\n')
    (tf / "envs" / "staging.tfvars").write_text('environment = "staging"\narchitecture = "arm64"\n')
    (tf / "envs" / "production.tfvars").write_text('environment = "production"\n')
    assert ci_runner.runner_for("staging", tmp_path) == "ubuntu-24.04-arm"
    assert ci_runner.runner_for("production", tmp_path) == "ubuntu-24.04"  # the variable's default
    (tf / "envs" / "production.tfvars").write_text('architecture = "sparc"\n')
    with pytest.raises(ConfigError, match="sparc"):
        ci_runner.runner_for("production", tmp_path)
    with pytest.raises(ConfigError, match="no environment 'nosuch'"):
        ci_runner.runner_for("nosuch", tmp_path)


@pytest.mark.parametrize("env", ["staging", "production"])
def test_invoke_yaml_and_the_runner_agree_with_the_tfvars(env: str) -> None:
    import yaml

    from deploy import ci_runner

    settings = yaml.safe_load((ROOT / "invoke.yaml").read_text())["deploy"]["environments"][env]
    assert settings.get("architecture", "x86_64") == ci_runner.architecture(env)
    assert ci_runner.runner_for(env) == ci_runner.RUNNERS[settings.get("architecture", "x86_64")]


def test_ci_runner_script_exits_with_the_typed_errors_code(capsys: pytest.CaptureFixture[str]) -> None:
    """CI runs ``python -m deploy.ci_runner`` without Invoke: an unknown environment is its message on
    stderr and ConfigError's exit code, not a traceback; a wrong call is usage and 2."""
    from deploy import ci_runner

    assert ci_runner.main(["no-such-env"]) == ConfigError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no environment 'no-such-env'" in err
    assert ci_runner.main([]) == 2
    assert "usage: python -m deploy.ci_runner ENV" in capsys.readouterr().err
