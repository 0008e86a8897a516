"""Knowledge quizzes: ``/v1/quizzes``."""
