"""``POST /v1/metrics/agreement``: agreement statistics for any valid API key."""

from __future__ import annotations

from fastapi import APIRouter

from services.audit_api.deps import PrincipalDep
from shared.agreement import service
from shared.schemas.agreement import AgreementRequest, AgreementResult
from shared.schemas.common import Problem

router = APIRouter(tags=["metrics"])


# A plain function: FastAPI runs it in its thread pool, so a large matrix never blocks the
# event loop while numpy works.
@router.post(
    "/v1/metrics/agreement",
    response_model=AgreementResult,
    responses={422: {"model": Problem}},
)
def measure_agreement(body: AgreementRequest, _: PrincipalDep) -> AgreementResult:
    """Krippendorff's alpha, Fleiss' and Cohen's kappa, Gwet's AC1 and percent agreement.

    Send ``ratings`` (one list per rater, one value per unit, null where missing) or
    ``counts`` (one list per unit: how many raters chose each category), with the ``level``
    of measurement and optionally the declared ``categories``. A statistic the data leave
    undefined is null, and ``notes`` say why. Nothing is stored.
    """
    return service.measure_agreement(body)
