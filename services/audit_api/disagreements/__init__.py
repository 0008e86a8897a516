"""Disagreements, disputes and arbitration: ``/v1/disagreements``."""
