"""signs_lightning: distil a diffusers teacher into a Score-based Idempotent Generative Network (SIGN)."""

__version__ = "0.1.0"
