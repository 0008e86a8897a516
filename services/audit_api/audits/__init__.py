"""The auditor work queue: claims with leases, blind audits, verdicts."""
