"""Magnitude pruning: distributions meet the target, ER follows its formula, masks never regrow."""

import math

import pytest
import torch

from nnc4rl.compress.pruning import (
    MaskSet,
    erdos_renyi_densities,
    erdos_renyi_score,
    layer_keep_counts,
    magnitude_masks,
)

# SAC Hopper actor (obs 11, act 3) and the Nature CNN (4 frames, 6 actions)
SAC_SHAPES = [(256, 11), (256, 256), (3, 256), (3, 256)]
CNN_SHAPES = [(32, 4, 8, 8), (64, 32, 4, 4), (64, 64, 3, 3), (512, 3136), (6, 512)]


def random_weights(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g) for s in shapes]


@pytest.mark.parametrize("shapes", [SAC_SHAPES, CNN_SHAPES])
@pytest.mark.parametrize("distribution", ["global", "uniform", "erdos_renyi"])
@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.98, 0.99])
def test_each_distribution_meets_the_target(shapes, distribution, sparsity):
    weights = random_weights(shapes)
    masks = magnitude_masks(weights, sparsity, distribution)
    total = sum(w.numel() for w in weights)
    pruned = sum(int((~m).sum()) for m in masks)
    # within one weight per layer of the network-wide target
    assert abs(pruned - sparsity * total) <= len(shapes)
    for m, w in zip(masks, weights, strict=True):
        assert m.shape == w.shape and m.dtype == torch.bool


def test_erdos_renyi_densities_follow_the_formula_with_clipping():
    # 99 %: the small head layers would exceed density 1 -> dense; the rest share one eps
    densities = erdos_renyi_densities(SAC_SHAPES, 0.9)
    scores = [erdos_renyi_score(s) for s in SAC_SHAPES]
    sizes = [math.prod(s) for s in SAC_SHAPES]
    clipped = [i for i, d in enumerate(densities) if d == 1.0]
    free = [i for i in range(len(sizes)) if i not in clipped]
    assert clipped, "at 90 % the tiny mu/log_std heads should stay dense"
    eps_values = [densities[i] / scores[i] for i in free]
    assert max(eps_values) - min(eps_values) < 1e-12  # one eps for all unclipped layers
    eps = eps_values[0]
    assert all(eps * scores[i] > 1 for i in clipped)  # clipped only where the formula exceeds 1
    assert all(densities[i] < 1 for i in free)
    kept = sum(d * n for d, n in zip(densities, sizes, strict=True))
    assert kept == pytest.approx(0.1 * sum(sizes))
    # paper formula for a conv layer: (n_l + n_{l+1} + w + h) / (n_l n_{l+1} w h)
    assert erdos_renyi_score((32, 4, 8, 8)) == (4 + 32 + 8 + 8) / (4 * 32 * 8 * 8)
    assert erdos_renyi_score((256, 11)) == (11 + 256) / (11 * 256)


def test_erdos_renyi_without_clipping_is_proportional_to_score():
    shapes = [(100, 100), (200, 100)]
    d = erdos_renyi_densities(shapes, 0.5)
    ratio = erdos_renyi_score(shapes[0]) / erdos_renyi_score(shapes[1])
    assert d[0] / d[1] == pytest.approx(ratio)


def test_global_uses_one_threshold():
    weights = random_weights(CNN_SHAPES)
    weights[3] *= 0.1  # make the fc layer's magnitudes differ from the convs'
    masks = magnitude_masks(weights, 0.9, "global")
    kept = torch.cat([w[m].abs() for w, m in zip(weights, masks, strict=True)])
    pruned = torch.cat([w[~m].abs() for w, m in zip(weights, masks, strict=True)])
    assert pruned.max() <= kept.min()


def test_uniform_prunes_each_layer_equally():
    counts = layer_keep_counts(CNN_SHAPES, 0.8, "uniform")
    for c, s in zip(counts, CNN_SHAPES, strict=True):
        assert c == round(0.2 * math.prod(s))


def test_local_distributions_prune_smallest_magnitudes_per_layer():
    weights = random_weights(SAC_SHAPES)
    for dist in ("uniform", "erdos_renyi"):
        for w, m in zip(weights, magnitude_masks(weights, 0.95, dist), strict=True):
            if (~m).any() and m.any():
                assert w[~m].abs().max() <= w[m].abs().min()


def test_unknown_distribution_is_rejected():
    with pytest.raises(ValueError, match="distribution='random'"):
        magnitude_masks(random_weights(SAC_SHAPES), 0.5, "random")


def test_gradual_pruning_never_regrows_and_biases_untouched():
    torch.manual_seed(0)
    layers = [torch.nn.Linear(11, 64), torch.nn.Linear(64, 3)]
    biases = [layer.bias.detach().clone() for layer in layers]
    masks = MaskSet(layers)
    previous = [torch.ones_like(m) for m in masks.masks]
    for s in (0.2, 0.5, 0.7, 0.9):
        with torch.no_grad():  # training moves weights between events
            for layer in layers:
                layer.weight.add_(0.3 * torch.randn_like(layer.weight))
        masks.apply()
        masks.prune_to(s, "global")
        for old, new in zip(previous, masks.masks, strict=True):
            assert not (new & ~old).any(), "a pruned weight came back"
        previous = [m.clone() for m in masks.masks]
        assert masks.measured_sparsity() == pytest.approx(s, abs=1 / 200)
    for layer, b in zip(layers, biases, strict=True):
        assert torch.equal(layer.bias, b)
        assert (layer.weight[~masks.masks[layers.index(layer)]] == 0).all()


def test_tied_layer_follows_its_anchor_outside_the_budget():
    """SAC's log_std head is pruned to mu's density; the budget covers the other layers only."""
    torch.manual_seed(0)
    shapes = [(256, 17), (256, 256), (6, 256), (6, 256)]  # latent_pi.0, latent_pi.2, mu, log_std
    weights = [torch.randn(s) for s in shapes]
    masks = magnitude_masks(weights, 0.98, "erdos_renyi", tied={3: 2})
    deployed = sum(int(m.sum()) for m in masks[:3])
    assert deployed == sum(
        round(d * math.prod(s))
        for d, s in zip(erdos_renyi_densities(shapes[:3], 0.98), shapes[:3], strict=True)
    )
    assert 1 - deployed / sum(math.prod(s) for s in shapes[:3]) == pytest.approx(0.98, abs=2e-5)
    assert int(masks[3].sum()) == int(masks[2].sum())  # same shape, same density
    kept = weights[3].abs()[masks[3]]
    assert kept.min() >= weights[3].abs()[~masks[3]].max()  # by magnitude
    with pytest.raises(ValueError, match="anchor"):
        magnitude_masks(weights, 0.5, "global", tied={3: 3})
