"""The console's routes, under ``/console`` (hidden from the API's OpenAPI schema)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from services.audit_api.console.admin import router as admin_router
from services.audit_api.console.arbitration import router as arbitration_router
from services.audit_api.console.audits import router as audits_router
from services.audit_api.console.calibrations import router as calibrations_router
from services.audit_api.console.errors import install_console_error_pages
from services.audit_api.console.escalations import router as escalations_router
from services.audit_api.console.my_audits import router as my_audits_router
from services.audit_api.console.oidc import router as oidc_router
from services.audit_api.console.overview import router as overview_router
from services.audit_api.console.policy import router as policy_router
from services.audit_api.console.reports import router as reports_router
from services.audit_api.console.sign_in import router as sign_in_router
from services.audit_api.console.templating import STATIC_DIR
from services.audit_api.console.training import router as training_router
from services.audit_api.console.workbench import router as workbench_router

router = APIRouter(prefix="/console", include_in_schema=False)
router.include_router(sign_in_router)
router.include_router(admin_router)
router.include_router(arbitration_router)
router.include_router(audits_router)
router.include_router(calibrations_router)
router.include_router(escalations_router)
router.include_router(my_audits_router)
router.include_router(oidc_router)
router.include_router(overview_router)
router.include_router(policy_router)
router.include_router(reports_router)
router.include_router(training_router)
router.include_router(workbench_router)


def install_console(app: FastAPI) -> None:
    """Mount the console: its pages, its static files, its error pages."""
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    install_console_error_pages(app)
