"""The API's ASGI app and its Lambda entry point (`app.main.handler`)."""

from __future__ import annotations

from fastapi import FastAPI
from mangum import Mangum

from app.config import app_version
from app.routes import admin, health

app = FastAPI(title="BlueMoxon API", version=app_version())
app.include_router(health.router)
app.include_router(admin.router)

# API Gateway and function URLs send no ASGI lifespan events; "off" skips Mangum's startup
# handshake on every cold start.
handler = Mangum(app, lifespan="off")
