"""Notification channels and their deliveries: ``/v1/channels`` and ``/v1/deliveries``."""
