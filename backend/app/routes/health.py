"""Liveness for the load balancer and the deploy verifier, which compares `version` with what it shipped."""

from __future__ import annotations

from fastapi import APIRouter

from app.config import app_version

router = APIRouter()


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok", "version": app_version()}
