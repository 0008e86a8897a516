"""The audit log: ``/v1/audit-log`` (admin, manager)."""
