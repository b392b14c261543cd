"""The lab: one-off studies (``lab/studies``), their run scripts and results (``lab/results``), written up in the lab
notebook (``benchmarks/README.md``). Nothing in ``signs_lightning`` or ``tests`` imports it; it builds on the
package and on ``benchmarks`` (the ``make bench`` harness).

    python -m lab.studies.pair_targets TEACHER_DIR
"""
