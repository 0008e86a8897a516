"""Wellbeing: daily caps on sensitive policy categories and each auditor's exposure."""
