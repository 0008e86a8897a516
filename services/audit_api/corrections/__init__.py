"""Corrections back to the source platform: ``/v1/sources/{id}/correction-target``."""
