"""Embedding networks fine-tuned with triplet loss on mined triplets (semi-hard, hard, all, or
the easy + semi-hard filter d(a,p) < d(a,n))."""

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


#: The mining strategies of :class:`MinedTripletLoss`.
MINING = ("easy_semihard", "semihard", "hard", "all")


def easy_semihard_mask(ap_dist: torch.Tensor, an_dist: torch.Tensor) -> torch.Tensor:
    """The question's filter: keep a triplet when d(a,p) < d(a,n) (its negative is farther from
    the anchor than its positive: the easy and the semi-hard triplets, whatever the margin)."""
    return ap_dist < an_dist


def _easy_semihard_miner() -> Any:
    """A pytorch-metric-learning miner keeping every triplet of the batch with d(a,p) < d(a,n)
    (the library has no such type: "semihard" also requires d(a,n) <= d(a,p) + margin)."""
    from pytorch_metric_learning.miners import BaseMiner
    from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

    class EasySemiHardMiner(BaseMiner):
        """Triplets whose negative is farther from the anchor than the positive."""

        def mine(
            self, embeddings: torch.Tensor, labels: torch.Tensor, ref_emb: torch.Tensor, ref_labels: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            anchor, positive, negative = lmu.get_all_triplets_indices(labels, ref_labels)
            mat = self.distance(embeddings, ref_emb)
            keep = easy_semihard_mask(mat[anchor, positive], mat[anchor, negative])
            return anchor[keep], positive[keep], negative[keep]

    return EasySemiHardMiner()


class MinedTripletLoss(nn.Module):
    """pytorch-metric-learning's TripletMarginLoss, averaged over the triplets a miner keeps
    from the batch (MeanReducer: a kept triplet with zero loss still counts in the mean).

    ``mining``: ``semihard`` (d(a,p) < d(a,n) <= d(a,p) + margin), ``hard`` (d(a,n) <= d(a,p)),
    ``all`` (every triplet violating the margin: d(a,n) <= d(a,p) + margin), each
    TripletMarginMiner's type of that name; ``easy_semihard`` (our own miner: d(a,p) < d(a,n),
    so triplets already satisfied by more than the margin are kept and dilute the mean).
    With the library's default AvgNonZeroReducer ``easy_semihard`` would train exactly like
    ``semihard`` (easy triplets have zero loss), hence the mean over kept triplets."""

    def __init__(self, margin: float, mining: str = "semihard") -> None:
        super().__init__()
        from pytorch_metric_learning import losses, miners, reducers

        if mining not in MINING:
            raise ValueError(f"mining: got {mining!r}; valid: {', '.join(MINING)}")
        self.mining = mining
        if mining == "easy_semihard":
            self.miner = _easy_semihard_miner()
        else:
            self.miner = miners.TripletMarginMiner(margin=margin, type_of_triplets=mining)
        self.loss = losses.TripletMarginLoss(margin=margin, reducer=reducers.MeanReducer())

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(embeddings, labels, self.miner(embeddings, labels))


def recall_at_1(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Share of samples whose nearest other sample (Euclidean) has the same label."""
    dist = torch.cdist(embeddings, embeddings)
    dist.fill_diagonal_(float("inf"))
    return (labels[dist.argmin(dim=1)] == labels).float().mean()


class TripletModule(RegularizedModule):
    """Triplet-loss fine-tuning on ``mining``'s triplets; metric ``recall_at_1``. The head's learning rate is
    ``head_lr_mult`` × the base learning rate (its own optimizer group)."""

    def __init__(
        self, net: EmbeddingNet, reg: Regularization, margin: float, head_lr_mult: float, mining: str = "semihard"
    ) -> None:
        super().__init__(net, reg, MinedTripletLoss(margin, mining))
        self.head_lr_mult = head_lr_mult

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"recall_at_1": recall_at_1(self(x), y)}

    def configure_optimizers(self) -> Any:
        head_module: nn.Module = self.net.head  # type: ignore[assignment]  # EmbeddingNet.head
        head = {"name": "head", "params": list(head_module.parameters()), "lr": self.reg.learning_rate * self.head_lr_mult}
        return make_optimizer(self.net, self.reg, parameter_groups(self.net, self.reg, extra_groups=[head]))
