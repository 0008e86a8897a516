"""Statistics: pure functions, no I/O.

``agreement`` — agreement among raters (Krippendorff's alpha, Fleiss' and Cohen's kappa,
Gwet's AC1, percent agreement); ``intervals`` — Wilson score intervals, sample sizes and the
two-proportion z-test; ``multiple_testing`` — Benjamini-Hochberg q-values; ``estimation`` —
the post-stratified accuracy of all decisions; ``scores`` — the severity-weighted quality
score, precision and recall.
"""
