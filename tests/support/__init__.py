"""Helpers and builders shared by the test modules (import them from here, never from another
``test_*`` module).

- ``problems``: ``assert_problem`` for RFC 9457 answers; ``db``: counting stored rows.
- ``audits``: reviewer profiles, QA auditor keys, pending audits, claiming and judging.
- ``disagreements``: an incorrect verdict with its open disagreement (``Case``).
- ``webhooks``: a real local webhook receiver, channels, running the notifier.
- ``quizzes``: a knowledge quiz, its answers, attempts.
- ``sampling``: sampling plans.
- ``calibrations``: calibration sessions.
- ``plumbline_run``: ``plumbline run`` as a subprocess (environment, start, ready, stop).
"""
