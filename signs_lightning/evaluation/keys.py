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
# Between a metric's name and a named sampler's (``fid2k_lenet16_of_ffz``).
SAMPLER_TAG = "_of_"
# The name of f(f(z)): f applied twice to the same noise, no re-noising (how far f(z) is from a fixed point).
FFZ = "ffz"
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


def nfe_sampler(nfe: int) -> str:
    """The name of a model's own sampler at ``nfe`` NFE (SIGN's multi-step sampler, the teacher's DDIM).

    >>> nfe_sampler(4)
    'nfe4'
    """
    return f"{NFE_SUFFIX.lstrip('_')}{nfe}"


def sampler_nfe(sampler: str) -> int | None:
    """``nfe_sampler``'s inverse: the NFE of a sampler name it made, None for any other name.

    >>> sampler_nfe("nfe4"), sampler_nfe(FFZ)
    (4, None)
    """
    tag, _, nfe = sampler.partition(NFE_SUFFIX.lstrip("_"))
    return int(nfe) if not tag and nfe.isdigit() else None


def metric_key(
    prefix: str, name: str, nfe: int | None = None, teacher: bool = False, sampler: str | None = None
) -> str:
    """``{prefix}/{teacher_}{name}{_nfe<k>}`` (no ``/`` when ``prefix`` is empty, no suffix when ``nfe`` is None);
    with a ``sampler`` name instead of ``nfe``: ``_nfe<k>`` for ``nfe_sampler(k)``, ``_of_<sampler>`` for any other.

    >>> metric_key("val", fid_name(2000, "lenet16"), 1, teacher=True), metric_key("val", IDEMPOTENCE_KEY)
    ('val/teacher_fid2k_lenet16_nfe1', 'val/idempotence_error')
    >>> metric_key("sign", fid_name(2000, "lenet16"), sampler=FFZ), metric_key("sign", CLASS_COVERAGE, sampler="nfe2")
    ('sign/fid2k_lenet16_of_ffz', 'sign/class_coverage_nfe2')
    """
    if sampler is not None:
        if nfe is not None:
            raise ValueError(f"a metric is of one sampler: got nfe={nfe} and sampler={sampler!r}")
        nfe = sampler_nfe(sampler)
    suffix = f"{NFE_SUFFIX}{nfe}" if nfe is not None else f"{SAMPLER_TAG}{sampler}" if sampler else ""
    key = f"{TEACHER_TAG if teacher else ''}{name}{suffix}"
    return f"{prefix}/{key}" if prefix else key


@dataclass(frozen=True)
class MetricKey:
    """A metric name taken apart: ``metric_key(prefix, name, nfe, teacher, sampler)`` gives it back (``sampler``: a
    named sampler's name; None for the NFE samplers, whose NFE is ``nfe``)."""

    prefix: str
    name: str
    nfe: int | None
    teacher: bool
    sampler: str | None = None


def parse_key(key: str) -> MetricKey:
    """``metric_key``'s inverse.

    >>> parse_key("val/teacher_fid2k_lenet16_nfe4")
    MetricKey(prefix='val', name='fid2k_lenet16', nfe=4, teacher=True, sampler=None)
    >>> parse_key("train/loss")
    MetricKey(prefix='train', name='loss', nfe=None, teacher=False, sampler=None)
    >>> parse_key("sign/fid2k_lenet16_of_ffz")
    MetricKey(prefix='sign', name='fid2k_lenet16', nfe=None, teacher=False, sampler='ffz')
    """
    prefix, _, rest = key.rpartition("/")
    teacher = rest.startswith(TEACHER_TAG)
    rest = rest.removeprefix(TEACHER_TAG)
    named, separator, sampler = rest.rpartition(SAMPLER_TAG)
    if separator and named and sampler:
        return MetricKey(prefix, named, None, teacher, sampler)
    name, separator, nfe = rest.rpartition(NFE_SUFFIX)
    if separator and nfe.isdigit():
        return MetricKey(prefix, name, int(nfe), teacher)
    return MetricKey(prefix, rest, None, teacher)
