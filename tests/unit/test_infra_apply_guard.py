"""`inv infra.apply` (the CI infra job's step) applies the plan it showed, and refuses one that
destroys a function or a layer version unless asked: the guard `deploy` has, where CI applies."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from deploy.config import EnvConfig
from deploy.context import RunContext
from deploy.errors import DestroyRefused
from deploy.run import infra
from deploy.terraform.decision import InfraDecision, SavedPlan


@pytest.fixture
def applied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path | None]:
    plan_file = tmp_path / "deploy-1.tfplan"
    plan_file.write_text("saved plan")
    saved = SavedPlan(
        path=plan_file, add=0, change=0, destroy=5, removals=("remove function acme-notifier",), planned=None
    )
    calls: list[Path | None] = []
    monkeypatch.setattr(infra, "require_prerequisites", lambda *_a, **_k: None)
    monkeypatch.setattr(infra, "_ensure_lock_bucket", lambda _env: None)
    monkeypatch.setattr(infra, "_locked", lambda *_a, **_k: contextlib.nullcontext())
    monkeypatch.setattr(
        infra,
        "_terraform_needed",
        lambda _env, **kw: (
            InfraDecision(needed=True, reason="plan", state="etag", plan=saved)
            if kw.get("always_plan")
            else pytest.fail("infra.apply must plan, not trust a fingerprint")
        ),
    )

    def infra_apply(_env: EnvConfig, **kw: Any) -> Any:
        calls.append(kw.get("plan_file"))
        return "targets"

    monkeypatch.setattr(infra, "infra_apply", infra_apply)
    return calls


def test_a_plan_that_removes_a_function_is_refused_and_discarded(applied: list[Path | None], tmp_path: Path) -> None:
    env = EnvConfig(name="staging", region="us-west-2")
    with pytest.raises(DestroyRefused, match="would remove function acme-notifier; nothing was changed") as err:
        infra.infra_apply_locked(RunContext.create(env))
    assert "--allow-destroy" in str(err.value)
    assert applied == []
    assert not (tmp_path / "deploy-1.tfplan").exists()  # a refused plan is not left for a later apply


def test_with_allow_destroy_the_saved_plan_itself_is_applied(applied: list[Path | None], tmp_path: Path) -> None:
    env = EnvConfig(name="staging", region="us-west-2")
    assert infra.infra_apply_locked(RunContext.create(env), allow_destroy=True) == "targets"
    assert applied == [tmp_path / "deploy-1.tfplan"]
