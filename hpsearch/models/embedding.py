"""Embedding networks fine-tuned with triplet loss on semi-hard triplets."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from hpsearch.models.base import RegularizedModule
from hpsearch.models.cnn import SmallCNN
from hpsearch.regularization import Regularization, make_optimizer, parameter_groups


class EmbeddingNet(nn.Module):
    """The lower layers of a pretrained :class:`SmallCNN` (conv1, conv2, fc1) and a new
    linear ``head``; outputs L2-normalized embeddings. The first ``frozen_layers`` of
    (conv1, conv2, fc1) have ``requires_grad = False``."""

    LOWER = ("conv1", "conv2", "fc1")

    def __init__(self, backbone: SmallCNN, embedding_dim: int, frozen_layers: int) -> None:
        super().__init__()
        if not 0 <= frozen_layers <= len(self.LOWER):
            raise ValueError(f"frozen_layers: got {frozen_layers}; valid: 0..{len(self.LOWER)}")
        self.side = backbone.side
        self.input, self.conv1, self.conv2, self.fc1 = backbone.input, backbone.conv1, backbone.conv2, backbone.fc1
        self.head = nn.Linear(backbone.fc2.in_features, embedding_dim)
        self.frozen = self.LOWER[:frozen_layers]
        for name in self.frozen:
            for p in getattr(self, name).parameters():
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input(x).view(-1, 1, self.side, self.side)
        h = self.fc1(self.conv2(self.conv1(h)).flatten(1))
        return F.normalize(self.head(h), dim=1)


class SemiHardTripletLoss(nn.Module):
    """pytorch-metric-learning's TripletMarginLoss on the batch's semi-hard triplets
    (d(a,p) < d(a,n) < d(a,p) + margin), mined by TripletMarginMiner."""

    def __init__(self, margin: float) -> None:
        super().__init__()
        from pytorch_metric_learning import losses, miners

        self.miner = miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard")
        self.loss = losses.TripletMarginLoss(margin=margin)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(embeddings, labels, self.miner(embeddings, labels))


def recall_at_1(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Share of samples whose nearest other sample (Euclidean) has the same label."""
    dist = torch.cdist(embeddings, embeddings)
    dist.fill_diagonal_(float("inf"))
    return (labels[dist.argmin(dim=1)] == labels).float().mean()


class TripletModule(RegularizedModule):
    """Triplet-loss fine-tuning; metric ``recall_at_1``. The head's learning rate is
    ``head_lr_mult`` × the base learning rate (its own optimizer group)."""

    def __init__(self, net: EmbeddingNet, reg: Regularization, margin: float, head_lr_mult: float) -> None:
        super().__init__(net, reg, SemiHardTripletLoss(margin))
        self.head_lr_mult = head_lr_mult

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"recall_at_1": recall_at_1(self(x), y)}

    def configure_optimizers(self) -> Any:
        head_module: nn.Module = self.net.head  # type: ignore[assignment]  # EmbeddingNet.head
        head = {"name": "head", "params": list(head_module.parameters()), "lr": self.reg.learning_rate * self.head_lr_mult}
        return make_optimizer(self.net, self.reg, parameter_groups(self.net, self.reg, extra_groups=[head]))
