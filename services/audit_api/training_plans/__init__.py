"""Training plans: ``/v1/training-plans``."""
