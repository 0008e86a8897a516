"""Calibration sessions: ``/v1/calibrations``."""
