"""Two-process CPU DDP fit of SIGN with every loss on (both optimizers step in one training_step).

Run as a script, not under pytest: Lightning's DDP launcher re-executes ``sys.argv`` for rank 1, which must be
this script. Prints one line per rank when the ranks end with identical weights:

    DDP-OK rank=<r> checksum=<weights> stream=<hash of the RNG state each training step starts from>

and rank 0 saves L_reg's pairs to OUT_DIR/pairs.pt (made on the ranks' devices and shared out).

    python scripts/ddp_sign_check.py TEACHER_DIR OUT_DIR [precision] [devices]
"""

from __future__ import annotations

import hashlib
import sys

import lightning as L
import torch

from signs_lightning.data import EmbeddedMNISTDataModule
from signs_lightning.losses import DistributionMatching, Flow, Regression
from signs_lightning.modules import SIGNModule
from signs_lightning.run.process_group import close_process_group


class RecordingSIGN(SIGNModule):
    """Records a hash of the RNG state every training step starts from (it fixes z, the L_reg indices, ...)."""

    def train_batch(self, x, optimizers):
        self.streams.append(hashlib.sha1(torch.random.get_rng_state().numpy().tobytes()).hexdigest()[:12])
        return super().train_batch(x, optimizers)


def main(teacher_dir: str, out_dir: str, precision: str = "32-true", devices: str = "2") -> None:
    torch.set_num_threads(1)  # two processes on two cores: intra-op threads would oversubscribe them
    L.seed_everything(0)
    model = RecordingSIGN(
        teacher=teacher_dir,
        flow=Flow(intervals=4),
        dmd=DistributionMatching(),
        reg=Regression(pairs=16, sampler_steps=2, cache_dir=f"{out_dir}/cache"),
        max_generator_steps=3,
        ema_decay=0.9,
    )
    model.streams = []
    trainer = L.Trainer(
        accelerator="cpu",
        devices=int(devices),
        strategy="ddp_find_unused_parameters_true",
        precision=precision,
        max_epochs=-1,
        default_root_dir=out_dir,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    trainer.fit(model, EmbeddedMNISTDataModule(image_size=8, batch_size=8))
    checksum = torch.stack([p.detach().double().sum() for p in model.student.parameters()]).sum()
    gathered = trainer.strategy.all_gather(checksum.float())
    if not torch.allclose(gathered, gathered[0].expand_as(gathered)):
        raise SystemExit(f"rank {trainer.global_rank}: ranks diverged: {gathered.tolist()}")
    assert model.generator_steps == 3, model.generator_steps
    if trainer.is_global_zero:
        torch.save(model.losses["reg"].cached._asdict(), f"{out_dir}/pairs.pt")
    # One write per rank: both ranks share the pipe, and print() may split text and newline.
    sys.stdout.write(
        f"DDP-OK rank={trainer.global_rank} checksum={checksum.item():.6f} stream={','.join(model.streams)}\n"
    )
    sys.stdout.flush()
    close_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
