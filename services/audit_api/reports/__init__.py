"""Reports: ``/v1/reports/accuracy`` (json, csv, xlsx)."""
