"""The console's routes, under ``/console`` (hidden from the API's OpenAPI schema)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from services.audit_api.console.errors import install_console_error_pages
from services.audit_api.console.sign_in import router as sign_in_router
from services.audit_api.console.templating import STATIC_DIR

router = APIRouter(prefix="/console", include_in_schema=False)
router.include_router(sign_in_router)


def install_console(app: FastAPI) -> None:
    """Mount the console: its pages, its static files, its error pages."""
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    install_console_error_pages(app)
