"""``make bench``: teacher DDIM, SIGN (and its ablations) and IGN on the embedded MNIST at an equal training budget.

Entry point: ``python -m benchmarks.run`` (see ``benchmarks/README.md``); models are declared in ``variants``.
"""
