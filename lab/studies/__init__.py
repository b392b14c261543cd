"""One-off studies: each a ``python -m lab.studies.<name>`` command whose results go under ``lab/results``."""
