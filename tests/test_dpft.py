import pytest
import torch
import torch.nn.functional as F

from mculora.dpft import CombinationSampler, DPFTConfig, divergence
from mculora.modalities import COMBINATIONS, combination_index, index_to_mask


def _separability(change_by_name: dict[str, float]) -> torch.Tensor:
    return torch.tensor([change_by_name.get(name, 0.5) for name in COMBINATIONS], dtype=torch.float64)


def test_first_observation_is_the_reference_and_changes_nothing():
    sampler = CombinationSampler(DPFTConfig())
    sampler.observe_separability(torch.rand(7))
    assert sampler.keep.tolist() == [0.5, 0.5, 0.5]


def test_least_changed_combination_gains_exposure_for_its_modalities():
    sampler = CombinationSampler(DPFTConfig(eta=0.01))
    reference = {name: 0.5 for name in COMBINATIONS}
    sampler.observe_separability(_separability(reference))
    # Every combination moved a lot except "a": audio must gain the most, the others lose.
    moved = {name: 0.5 + 0.1 * (i + 1) for i, name in enumerate(COMBINATIONS)}
    moved["a"] = 0.5
    sampler.observe_separability(_separability(moved))
    p_a, p_t, p_v = sampler.keep.tolist()
    assert p_a > 0.5 and p_a > p_t and p_a > p_v
    # Exact value: rank 0 is "a" (+eta to a, -eta to t, v); the following ranks follow in the order of change.
    expected = torch.full((3,), 0.5, dtype=torch.float64)
    order = ["a"] + [n for n in COMBINATIONS if n != "a"]
    for rank, name in enumerate(order):
        sign = index_to_mask(combination_index(name)).double() * 2 - 1
        expected = (expected + sign * 0.01 * 0.5**rank).clamp(0.4, 0.6)
    torch.testing.assert_close(sampler.keep, expected)


def test_keep_probabilities_stay_within_clip_bounds():
    sampler = CombinationSampler(DPFTConfig(eta=0.5, clip_low=0.45, clip_high=0.55))
    g = torch.Generator().manual_seed(0)
    sampler.observe_separability(torch.rand(7, generator=g))
    for _ in range(50):
        sampler.observe_separability(torch.rand(7, generator=g))
        assert ((sampler.keep >= 0.45) & (sampler.keep <= 0.55)).all()
    # eta 0.5 would leave [0, 1] within one step without the clip; the steps really are that large:
    assert sampler.keep.max() - sampler.keep.min() > 0.05


def _step(keep: torch.Tensor, change: torch.Tensor, eta: float) -> torch.Tensor:
    """One DPFT update written out: combinations in order of increasing change (ties by index) push their
    modalities up and the others down by eta / 2**rank, clipped to [0.4, 0.6]."""
    for rank, k in enumerate(torch.argsort(change, stable=True).tolist()):
        sign = index_to_mask(k).double() * 2 - 1
        keep = (keep + sign * eta * 0.5**rank).clamp(0.4, 0.6)
    return keep


def test_previous_epoch_reference_tracks_the_last_measurement():
    """ "initial" measures every change against the first measurement, "previous" against the one before: with the
    last two measurements equal, "previous" sees no change in the last step (all ties, index order) while "initial"
    still sees t and a moved."""
    initial = CombinationSampler(DPFTConfig(reference="initial"))
    previous = CombinationSampler(DPFTConfig(reference="previous"))
    series = [_separability({}), _separability({"t": 0.9, "a": 0.6}), _separability({"t": 0.9, "a": 0.6})]
    for s in series:
        initial.observe_separability(s)
        previous.observe_separability(s)
    eta, start = DPFTConfig().eta, torch.full((3,), 0.5, dtype=torch.float64)
    first = _step(start, (series[1] - series[0]).abs(), eta)
    torch.testing.assert_close(initial.keep, _step(first, (series[2] - series[0]).abs(), eta), rtol=0, atol=1e-12)
    torch.testing.assert_close(
        previous.keep, _step(first, torch.zeros(7, dtype=torch.float64), eta), rtol=0, atol=1e-12
    )
    assert not torch.equal(initial.keep, previous.keep)


def test_off_mode_keeps_a_fixed_probability_and_samples_every_combination():
    sampler = CombinationSampler(DPFTConfig(mode="off", keep_probability=0.5))
    sampler.observe_separability(torch.rand(7))
    sampler.observe_separability(torch.rand(7))
    assert sampler.keep.tolist() == [0.5, 0.5, 0.5]
    draws = sampler.sample(14000, torch.Generator().manual_seed(0))
    counts = torch.bincount(draws, minlength=7).double() / 14000
    assert draws.min() >= 0 and draws.max() <= 6  # never the empty set
    torch.testing.assert_close(counts, torch.full((7,), 1 / 7, dtype=torch.float64), atol=0.015, rtol=0)


def test_keep_probability_sets_modality_frequency():
    sampler = CombinationSampler(DPFTConfig(mode="off", keep_probability=0.8))
    masks = index_to_mask(sampler.sample(20000, torch.Generator().manual_seed(1))).double()
    # P(kept | not all missing) = 0.8 / (1 - 0.2**3)
    torch.testing.assert_close(
        masks.mean(0), torch.full((3,), 0.8 / (1 - 0.008), dtype=torch.float64), atol=0.01, rtol=0
    )


def test_accuracy_variant_favours_combinations_that_improved_least():
    sampler = CombinationSampler(DPFTConfig(mode="accuracy"))
    sampler.observe_accuracy(torch.full((7,), 0.5))
    improved = torch.tensor([0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.51])  # "v" improved least
    sampler.observe_accuracy(improved)
    weights = sampler.weights
    assert weights.sum().item() == pytest.approx(1.0)
    assert int(weights.argmax()) == combination_index("v")
    draws = sampler.sample(5000, torch.Generator().manual_seed(0))
    assert torch.bincount(draws, minlength=7).argmax() == combination_index("v")


def test_js_divergence_properties():
    p = torch.randn(5, 8)
    assert torch.allclose(divergence(p, p, "js"), torch.zeros(5), atol=1e-6)
    q = torch.randn(5, 8) * 3
    torch.testing.assert_close(divergence(p, q, "js"), divergence(q, p, "js"))
    assert (divergence(p, q, "js") > 0).all() and (divergence(p, q, "js") <= torch.log(torch.tensor(2.0)) + 1e-6).all()


def test_reference_divergence_is_the_reference_codes_kl_direction():
    """The reference computes 0.5 * (kl_div(p.log(), m) + kl_div(q.log(), m)) = (KL(m||p) + KL(m||q)) / 2."""
    p_logits, q_logits = torch.randn(6, 8), torch.randn(6, 8) * 2
    p, q = p_logits.softmax(-1), q_logits.softmax(-1)
    m = 0.5 * (p + q)
    by_hand = 0.5 * (F.kl_div(p.log(), m, reduction="none").sum(-1) + F.kl_div(q.log(), m, reduction="none").sum(-1))
    torch.testing.assert_close(divergence(p_logits, q_logits, "reference"), by_hand)
    assert not torch.allclose(divergence(p_logits, q_logits, "reference"), divergence(p_logits, q_logits, "js"))


def test_reference_protocol_draws_one_availability_per_speaker_role():
    sampler = CombinationSampler(DPFTConfig(keep_probability=0.5))
    speakers = torch.tensor([[0, 1, 0], [1, 1, 0]])
    g = torch.Generator().manual_seed(3)
    empty_routes = 0
    for _ in range(200):
        routing = sampler.sample_reference(speakers, g)
        host, guest = routing.available[0, 0], routing.available[0, 1]
        assert torch.equal(routing.available[1, 2], host) and torch.equal(routing.available[1, 0], guest)
        assert torch.equal(routing.modality_mask[0], host | guest)
        assert len(set(routing.combination.tolist())) == 1  # one routing index for the whole batch
        empty_routes += int(routing.combination[0]) == -1  # the all-missing draw happens (p = 1/8)
    assert 5 < empty_routes < 50


def test_invalid_configs_are_rejected():
    with pytest.raises(ValueError):
        DPFTConfig(mode="sometimes")
    with pytest.raises(ValueError):
        DPFTConfig(clip_low=0.7, clip_high=0.6)


@pytest.mark.parametrize("mode", ["separability", "off", "accuracy"])
def test_allowed_modalities_limit_the_draws(mode):
    sampler = CombinationSampler(DPFTConfig(mode=mode))
    allowed = torch.tensor([True, False, True])  # audio and vision only
    draws = sampler.sample(3000, torch.Generator().manual_seed(0), allowed)
    names = {COMBINATIONS[k] for k in draws.tolist()}
    assert names == {"a", "v", "av"}
