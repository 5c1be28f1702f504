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


def test_id_token_write_only_in_the_deploy_job_behind_an_environment(
    both: list[wf.Workflow], deploy: wf.Workflow
) -> None:
    assert wf.jobs_with_permission(both, "id-token", "write") == ["deploy.yml:deploy"]
    assert deploy.jobs["deploy"]["environment"]
    assert [j for w in both for j in wf.jobs_with_permission([w], "contents", "write")] == []


def test_deploy_targets_known_environments_one_at_a_time(deploy: wf.Workflow) -> None:
    job = deploy.jobs["deploy"]
    env_expr = job["env"]["ENV"]
    assert job["environment"] == env_expr
    targets = wf.resolve(env_expr, {}, {})
    assert set(targets) == {"staging", "production"}
    assert set(targets) <= set(_deploy_settings()["environments"])
    assert env_expr.removeprefix("${{").removesuffix("}}").strip() in job["concurrency"]["group"]
    assert job["concurrency"]["cancel-in-progress"] is False


def test_deploy_python_is_the_lambda_runtime(deploy: wf.Workflow) -> None:
    # verify runs the deployed bytes with the runtime's interpreter, so the job must have it.
    settings = _deploy_settings()
    job = deploy.jobs["deploy"]
    assert wf.sessions_run(deploy) == {}  # deploy calls inv directly, no nox session
    for env in wf.resolve(job["env"]["ENV"], {}, {}):
        runtime = settings["environments"][env].get("runtime", settings["runtime"])
        assert [runtime.removeprefix("python")] == wf._setup_python_versions(job)


def test_deploy_assumes_a_role_from_environment_variables(deploy: wf.Workflow) -> None:
    """The infrastructure role applies Terraform; the deploy role replaces it before the deploy."""
    steps = deploy.jobs["deploy"]["steps"]
    is_aws = [str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials@") for s in steps]
    aws = [s for s, yes in zip(steps, is_aws, strict=True) if yes]
    assert [s["with"]["role-to-assume"] for s in aws] == [
        "${{ vars.AWS_INFRA_ROLE_ARN }}",
        "${{ vars.AWS_DEPLOY_ROLE_ARN }}",
    ]
    assert all(s["with"]["aws-region"].startswith("${{ vars.") for s in aws)
    runs = [str(s.get("run", "")) for s in steps]
    infra_at = next(i for i, r in enumerate(runs) if r.startswith("inv infra.apply"))
    deploy_at = next(i for i, r in enumerate(runs) if r.startswith("inv deploy"))
    first_role, second_role = (i for i, yes in enumerate(is_aws) if yes)
    assert first_role < infra_at < second_role < deploy_at
    assert "arn:aws" not in deploy.text
    assert "secrets." not in deploy.text


def test_deploy_installs_the_hashed_lock_before_any_credentials(deploy: wf.Workflow) -> None:
    steps = deploy.jobs["deploy"]["steps"]
    runs = [str(s.get("run", "")) for s in steps]
    install_at = runs.index("python -m pip install --require-hashes --no-deps -r requirements/deploy.txt")
    first_role = next(i for i, s in enumerate(steps) if "configure-aws-credentials" in str(s.get("uses", "")))
    assert install_at < first_role
    assert sum("pip install" in r for r in runs) == 1  # nothing else is installed next to the roles


def test_deploy_installs_bubblewrap_before_any_credentials(deploy: wf.Workflow) -> None:
    """verify jails the sandbox with bwrap; without it the deploy stops (or, worse, someone opts out)."""
    steps = deploy.jobs["deploy"]["steps"]
    runs = [str(s.get("run", "")) for s in steps]
    first_role = next(i for i, s in enumerate(steps) if "configure-aws-credentials" in str(s.get("uses", "")))
    assert runs.index("sudo apt-get update -qq") < runs.index("sudo apt-get install -y bubblewrap") < first_role
    assert runs.index(" ".join(wf.ALLOW_USER_NAMESPACES)) < first_role
    assert sum("apt-get" in r for r in runs) == 2  # refresh the lists, install bubblewrap: nothing else


def test_deploy_applies_infra_then_deploys_then_reports(deploy: wf.Workflow) -> None:
    commands = [s.command for s in wf.run_steps(deploy)]
    words = [wf.split_command(c) for c in commands]
    order = [w[1] for w in words if w[0] == "inv"]
    assert order == ["infra.apply", "deploy"]
    deploy_words = next(w for w in words if w[:2] == ["inv", "deploy"])
    report = Path(deploy_words[deploy_words.index("--report-file") + 1])
    # `--report-file X.json` also writes X.md, which the last step shows on the run's page.
    assert words[-1] == ["cat", str(report.with_suffix(".md")), ">>", wf.STEP_SUMMARY]


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
        ("python -m pip install requests", "installs requests"),
        ("python -m pip install -r requirements/deploy.txt", "without --require-hashes"),
        ("python -m pip install --require-hashes -r requirements.txt", "only requirements/deploy.txt may be"),
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
        'python -m pip install "nox>=2024.10" uv',
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
    assert jobs["deploy"]["needs"] == "platform"
    assert jobs["deploy"]["runs-on"] == "${{ needs.platform.outputs.runner }}"
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
