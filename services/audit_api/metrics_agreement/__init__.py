"""Agreement statistics on demand: ``POST /v1/metrics/agreement``."""
