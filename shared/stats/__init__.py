"""Statistics: pure functions, no I/O.

``agreement`` — agreement among raters (Krippendorff's alpha, Fleiss' and Cohen's kappa,
Gwet's AC1, percent agreement); ``intervals`` — Wilson score intervals, sample sizes and the
two-proportion z-test.
"""
