"""Metric names, built and read back in one place: the logs, ``signs validate``'s table, the demo's
``metrics.json`` and the benchmark all use these.

A name is ``{prefix}/{teacher_}{name}{_nfe<k>}``: the prefix says where it was measured (``val``, ``test``,
``sign``...), ``teacher_`` marks the teacher's own sampler, and the NFE suffix the sampler setting. FIDs are named
after their sample count and feature space (``fid2k_lenet16``), so distances measured differently never share a
name.
"""

from __future__ import annotations

from dataclasses import dataclass

TEACHER_TAG = "teacher_"
NFE_SUFFIX = "_nfe"
CLASS_COVERAGE = "class_coverage"
IDEMPOTENCE_KEY = "idempotence_error"
RECONSTRUCTION_KEY = "reconstruction_error"
# The prefix of the diagnostics logged during training.
DIAGNOSTICS_PREFIX = "diag"


def count_tag(num_samples: int) -> str:
    """How a sample count appears in metric names.

    >>> [count_tag(n) for n in (500, 2000, 2500, 10000, 50000)]
    ['500', '2k', '2.5k', '10k', '50k']
    """
    if num_samples >= 1000 and num_samples % 100 == 0:
        return f"{num_samples / 1000:g}k"
    return str(num_samples)


def fid_name(num_samples: int, extractor: str) -> str:
    """The name of an FID over ``num_samples`` samples in ``extractor``'s features.

    >>> fid_name(2000, "lenet16")
    'fid2k_lenet16'
    """
    return f"fid{count_tag(num_samples)}_{extractor}"


def is_fid_name(name: str) -> bool:
    """Whether ``name`` (without prefix, teacher tag or NFE suffix) is one ``fid_name`` makes."""
    tag, separator, extractor = name.removeprefix("fid").partition("_")
    return name.startswith("fid") and bool(separator and extractor) and tag.removesuffix("k").replace(".", "").isdigit()


def metric_key(prefix: str, name: str, nfe: int | None = None, teacher: bool = False) -> str:
    """``{prefix}/{teacher_}{name}{_nfe<k>}`` (no ``/`` when ``prefix`` is empty, no suffix when ``nfe`` is None).

    >>> metric_key("val", fid_name(2000, "lenet16"), 1, teacher=True), metric_key("val", IDEMPOTENCE_KEY)
    ('val/teacher_fid2k_lenet16_nfe1', 'val/idempotence_error')
    """
    key = f"{TEACHER_TAG if teacher else ''}{name}{'' if nfe is None else f'{NFE_SUFFIX}{nfe}'}"
    return f"{prefix}/{key}" if prefix else key


@dataclass(frozen=True)
class MetricKey:
    """A metric name taken apart: ``metric_key(prefix, name, nfe, teacher)`` gives it back."""

    prefix: str
    name: str
    nfe: int | None
    teacher: bool


def parse_key(key: str) -> MetricKey:
    """``metric_key``'s inverse.

    >>> parse_key("val/teacher_fid2k_lenet16_nfe4")
    MetricKey(prefix='val', name='fid2k_lenet16', nfe=4, teacher=True)
    >>> parse_key("train/loss")
    MetricKey(prefix='train', name='loss', nfe=None, teacher=False)
    """
    prefix, _, rest = key.rpartition("/")
    teacher = rest.startswith(TEACHER_TAG)
    rest = rest.removeprefix(TEACHER_TAG)
    name, separator, nfe = rest.rpartition(NFE_SUFFIX)
    if separator and nfe.isdigit():
        return MetricKey(prefix, name, int(nfe), teacher)
    return MetricKey(prefix, rest, None, teacher)
