"""A small LeNet trained on the embedded MNIST: the feature space of the CPU-scale Fréchet distance."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FEATURES = 128
CLASSES = 10


class LeNet(nn.Module):
    """(B, 1, S, S) in [-1, 1] → ``features`` (B, 128) → ``head`` (B, 10) logits. Any S ≥ 8."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(32 * 16, FEATURES),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURES, CLASSES)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(images))


def train_lenet(
    image_size: int, seed: int = 0, epochs: int = 4, batch_size: int = 32, held_out_per_class: int = 50
) -> tuple[dict[str, Tensor], float]:
    """Trains on the 5000 embedded digits minus a stratified held-out set; returns (state_dict, held-out accuracy).

    About 6 s on one CPU core at 16×16 for ~97% held-out accuracy.

    Runs on the CPU inside ``fork_rng`` so that the caller's random streams (which must stay equal across DDP ranks)
    are untouched.
    """
    # Imported here: the data package pulls in Lightning and torchvision, which the metric code does not need.
    from signs_lightning.data.mnist import load_mnist_5k

    images, labels = load_mnist_5k(image_size)
    threads = torch.get_num_threads()
    # Batches this small gain nothing from intra-op threads, and on shared cores their spin-waits made training 10x
    # slower; one thread also makes the weights independent of the machine's core count.
    torch.set_num_threads(1)
    try:
        # enable_grad: the first scoring (e.g. under an evaluation's no_grad) may be what trains it.
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            return _train(images, labels, seed, epochs, batch_size, held_out_per_class)
    finally:
        torch.set_num_threads(threads)


def _train(
    images: Tensor, labels: Tensor, seed: int, epochs: int, batch_size: int, held_out_per_class: int
) -> tuple[dict[str, Tensor], float]:
    torch.manual_seed(seed)
    held_out = torch.zeros(len(labels), dtype=torch.bool)
    for digit in range(CLASSES):
        index = (labels == digit).nonzero().squeeze(1)
        held_out[index[torch.randperm(len(index))[:held_out_per_class]]] = True
    train_x, train_y = images[~held_out], labels[~held_out]
    net = LeNet()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    steps = epochs * -(-len(train_y) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    net.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(train_y)).split(batch_size):
            loss = F.cross_entropy(net(train_x[batch]), train_y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(images[held_out]).argmax(1) == labels[held_out]).float().mean().item()
    return net.state_dict(), accuracy
