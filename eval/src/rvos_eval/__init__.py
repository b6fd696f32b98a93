"""rvos_eval: J&F evaluation exact to the official code, per benchmark.

metrics (J, F per frame), stats (mean / recall / decay), mevis, davis (semi-supervised and
unsupervised), refdavis (four annotator runs), cli (``python -m rvos_eval``).
"""
