"""Population dropout masks: each unit kept at its own rate, scaled by 1/keep, in the tensor's
own memory layout, fixed by torch's seed."""

from __future__ import annotations

import pytest
import torch

from hpsearch.population.dropout_masks import LEVELS, DropoutMasks

RATES = torch.tensor([0.1, 0.5, 0.9, 1.0])


def _kept_rates(scale: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    return (scale != 0).float().mean(dim=dims)


@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_each_member_and_unit_is_kept_at_its_own_rate(layout: str) -> None:
    keep = RATES.view(4, 1, 1).expand(4, 1, 64).contiguous()
    keep[:, :, 32:] = 0.5  # a second rate per member, on half of the units
    out = torch.empty(4, 3000, 64) if layout == "contiguous" else torch.empty(4, 64, 3000).transpose(1, 2)
    scale = DropoutMasks().scales_(out, keep)
    assert scale is out
    rates = _kept_rates(scale, (1,))  # (members, units)
    assert torch.allclose(rates[:, :32].mean(1), RATES, atol=0.01)
    assert torch.allclose(rates[:, 32:].mean(1), torch.full((4,), 0.5), atol=0.01)
    kept = scale != 0
    assert torch.equal(scale[kept], (1 / keep).expand_as(scale)[kept])  # kept units are exactly 1/keep
    assert kept[3, :, :32].all()  # keep 1: every unit, always


def test_channels_last_masks_follow_each_channels_rate_in_place() -> None:
    keep = RATES.repeat_interleave(2).view(1, 8, 1, 1)  # 4 members x 2 channels
    out = torch.empty(300, 8, 6, 6).contiguous(memory_format=torch.channels_last)
    scale = DropoutMasks().scales_(out, keep)
    assert scale is out and scale.is_contiguous(memory_format=torch.channels_last)
    rates = _kept_rates(scale, (0, 2, 3)).view(4, 2).mean(1)
    assert torch.allclose(rates, RATES, atol=0.01)
    assert torch.allclose(scale[:, 2][scale[:, 2] != 0], torch.tensor(2.0))


def test_the_torch_seed_fixes_the_masks() -> None:
    keep = torch.full((2, 1, 50), 0.5)

    def draw(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        masks = DropoutMasks()
        return torch.stack([masks.scales_(torch.empty(2, 10, 50), keep) for _ in range(3)])

    assert torch.equal(draw(0), draw(0))
    assert not torch.equal(draw(0), draw(1))
    first = draw(0)
    assert not torch.equal(first[0], first[1])  # a new mask every draw


def test_a_keep_probability_is_realized_to_sixteen_bits() -> None:
    # keep = 1.5 / LEVELS is realized as round(keep * LEVELS) / LEVELS = 2 / LEVELS: of 2**24
    # units about 512 kept (the nominal 1.5 / LEVELS would keep about 384)
    keep = torch.full((1, 1, 1), 1.5 / LEVELS)
    out = torch.empty(1, 1 << 24, 1)
    kept = int((DropoutMasks().scales_(out, keep) != 0).sum())
    expected = (1 << 24) * 2 / LEVELS
    assert abs(kept - expected) < 4 * expected**0.5, kept
