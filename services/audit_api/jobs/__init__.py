"""Background jobs requested through the API: ``GET /v1/jobs/{job_id}``."""
