import pytest
import torch

from mculora.modalities import MODALITIES, Modality, index_to_mask
from mculora.model import STACKED_ROWS, MCULoRA, MCULoRAConfig
from mculora.networks.late_fusion import LateFusionBackbone
from mculora.training.config import TrainConfig
from mculora.training.methods import build_method

DIMS = {"audio": 10, "text": 14, "vision": 12}


def _model(**overrides) -> MCULoRA:
    torch.manual_seed(0)
    model = MCULoRA(MCULoRAConfig(feature_dims=DIMS, num_outputs=4, hidden=16, depth=2, **overrides))
    # Trained adapters are non-zero; give every B a value so the tests see the adapters at work.
    for name, p in model.named_parameters():
        if ".lora_B." in name:
            torch.nn.init.normal_(p, std=0.2)
    return model.eval()


def _inputs(batch=4, length=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    features = {m: torch.randn(batch, length, DIMS[m.value], generator=g) for m in MODALITIES}
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[1, 3:] = False
    return features, mask


@pytest.mark.parametrize("branch", ["with_base", "adapter_only"])
def test_logits_decompose_exactly_into_base_shared_and_combination(branch):
    model = _model(combination_branch=branch)
    features, mask = _inputs()
    out = model(features, mask, index_to_mask(torch.tensor([0, 3, 4, 6])))
    torch.testing.assert_close(out.logits, out.base + out.shared + out.combination_term, rtol=0, atol=1e-6)
    assert out.shared.abs().sum() > 0 and out.combination_term.abs().sum() > 0
    assert out.logits.shape == (4, 5, 4)


def test_zero_initialised_adapters_change_nothing():
    torch.manual_seed(0)
    fresh = MCULoRA(
        MCULoRAConfig(feature_dims=DIMS, num_outputs=4, hidden=16, depth=2, combination_branch="adapter_only")
    ).eval()
    features, mask = _inputs()
    out = fresh(features, mask, index_to_mask(torch.tensor([0, 1, 2, 5])))
    assert torch.count_nonzero(out.shared) == 0 and torch.count_nonzero(out.combination_term) == 0
    assert torch.count_nonzero(out.specific_share) == 0  # adapter-only streams are empty until trained


def test_mixed_combination_batch_equals_samples_run_one_by_one():
    model = _model()
    features, mask = _inputs()
    combination = torch.tensor([2, 5, 0, 2])
    batched = model(features, mask, index_to_mask(combination))
    for i in range(4):
        single = model(
            {m: f[i : i + 1] for m, f in features.items()}, mask[i : i + 1], index_to_mask(combination[i : i + 1])
        )
        valid = mask[i]
        torch.testing.assert_close(single.logits[0][valid], batched.logits[i][valid], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(single.specific_share[0], batched.specific_share[i], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("combination", ["t", "av", "at"])
def test_masked_out_modality_features_do_not_change_the_output(combination):
    from mculora.modalities import combination_index

    model = _model()
    features, mask = _inputs()
    modality_mask = index_to_mask(torch.full((4,), combination_index(combination)))
    before = model(features, mask, modality_mask).logits
    changed = dict(features)
    for i, m in enumerate(MODALITIES):
        if not modality_mask[0, i]:
            changed[m] = torch.randn_like(features[m]) * 100
    after = model(changed, mask, modality_mask).logits
    torch.testing.assert_close(before, after, rtol=0, atol=0)
    # ...while a present modality's features do matter.
    present = next(m for i, m in enumerate(MODALITIES) if modality_mask[0, i])
    changed[present] = features[present] + 1.0
    assert not torch.allclose(model(changed, mask, modality_mask).logits, before)


def test_padding_utterances_do_not_change_real_ones():
    model = _model()
    features, mask = _inputs()
    out = model(features, mask, index_to_mask(torch.zeros(4, dtype=torch.long))).logits
    noisy = {m: f.clone() for m, f in features.items()}
    noisy[Modality.TEXT][1, 3:] = 50.0
    out2 = model(noisy, mask, index_to_mask(torch.zeros(4, dtype=torch.long))).logits
    torch.testing.assert_close(out[1, :3], out2[1, :3], rtol=0, atol=0)


def test_routing_override_and_specific_share():
    model = _model()
    features, mask = _inputs()
    complete = index_to_mask(torch.zeros(4, dtype=torch.long))
    default = model(features, mask, complete)
    forced = model(features, mask, complete, combination=torch.full((4,), 4))
    assert default.combination_index.tolist() == [0, 0, 0, 0]
    assert forced.combination_index.tolist() == [4, 4, 4, 4]
    assert not torch.allclose(default.combination_term, forced.combination_term)
    assert (default.specific_share > 0).all() and default.specific_share.shape == (4, 3)
    # A modality the sample does not have gets no combination-specific part.
    text_only = model(features, mask, index_to_mask(torch.full((4,), 5)))
    assert (text_only.specific_share[:, [0, 2]] == 0).all() and (text_only.specific_share[:, 1] > 0).all()


def test_baseline_backbone_has_no_adapters():
    """The baseline's network is the late-fusion backbone the peers build on: MCULoRA's without its adapters."""
    torch.manual_seed(0)
    config = TrainConfig()
    config.model.hidden, config.model.depth = 16, 2
    plain = build_method("baseline", config).build_model(DIMS, 4)
    assert isinstance(plain, LateFusionBackbone) and plain.parameter_counts()["adapters"] == 0
    full = _model()
    assert full.parameter_counts()["total"] > plain.parameter_counts()["total"]
    # Same encoders and fusion: the parameters without adapters are the same tensors' shapes under the same names.
    without_adapters = {n: p.shape for n, p in full.named_parameters() if ".lora_" not in n}
    assert sorted(p.shape for p in plain.parameters()) == sorted(without_adapters.values())
    features, mask = _inputs()
    out = plain.eval()(features, mask, index_to_mask(torch.tensor([0, 1, 2, 3])))
    torch.testing.assert_close(out.logits, out.base)


def test_no_nan_gradients_when_a_modality_is_missing_everywhere():
    model = _model().train()
    features, mask = _inputs()
    out = model(features, mask, index_to_mask(torch.full((4,), 5)))  # text only
    out.logits[mask].sum().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(torch.isfinite(g).all() for g in grads.values() if g is not None)
    # Gradient reaches the present modality's path and the text-only combination's adapters, nothing reaches the
    # other combinations' adapters, and the missing modalities' input weights see none of the loss.
    for name in ("in_proj.text.base.weight", "layers.text.0.attention.v.weight", "head.lora_B.t.weight"):
        assert grads[name] is not None and grads[name].abs().sum() > 0, name
    others = [name for name in grads if ".lora_" in name and name.rsplit(".", 2)[-2] not in ("shared", "t")]
    assert others and all(grads[name] is None for name in others)
    for modality in ("audio", "vision"):
        assert grads[f"in_proj.{modality}.base.weight"].abs().sum() == 0, modality


def test_config_validation():
    with pytest.raises(ValueError, match="feature_dims"):
        MCULoRAConfig(feature_dims={"audio": 3}, num_outputs=2)
    with pytest.raises(ValueError, match="divisible"):
        MCULoRAConfig(feature_dims=DIMS, num_outputs=2, hidden=15, heads=2)


def test_single_utterance_attention_shortcut_is_exact():
    """At inference, attention over one utterance is its value projection (zero when masked), bit for bit."""
    from mculora.model import UtteranceAttention

    torch.manual_seed(0)
    attention = UtteranceAttention(16, 2, 0.0).eval()
    x = torch.randn(5, 1, 16)
    key_mask = torch.tensor([[True], [False], [True], [True], [False]])
    shortcut = attention(x, key_mask)
    assert torch.equal(shortcut, attention.attend(x, key_mask))
    assert torch.count_nonzero(shortcut[~key_mask[:, 0]]) == 0
    attention.train()  # training keeps the full computation (the query and key weights stay in the graph)
    assert torch.equal(attention(x, key_mask), attention.attend(x, key_mask))


def _fields(out) -> list[torch.Tensor]:
    reprs = [out.shared_repr[m] for m in MODALITIES] + [out.combination_repr[m] for m in MODALITIES]
    return [out.logits, out.base, out.shared, out.combination_term, out.specific_share, out.combination_index, *reprs]


@pytest.mark.parametrize("stream", ["residual", "chain"])
def test_conditions_in_one_pass_equal_one_forward_each_bit_for_bit(stream):
    """The 7 test conditions, and DPFT's probes (complete inputs routed to each combination), share the work of
    the modalities they have in common; each output must be exactly the separate forward's."""
    model = _model(combination_stream=stream)
    features, mask = _inputs(length=6)
    available = torch.rand(4, 6, 3, generator=torch.Generator().manual_seed(2)) > 0.3
    conditions = index_to_mask(torch.arange(7))
    complete = torch.ones(7, 3, dtype=torch.bool)
    with torch.no_grad():
        for masks, combinations in ((conditions, None), (complete, list(range(7)))):
            together = model.forward_conditions(features, mask, masks, available, combinations)
            for c, out in enumerate(together):
                routing = None if combinations is None else torch.full((4,), combinations[c])
                alone = model(features, mask, masks[c].expand(4, -1), available, routing)
                assert all(torch.equal(a, b) for a, b in zip(_fields(out), _fields(alone), strict=True)), c


def test_conditions_in_one_pass_refuse_training_mode():
    model = _model().train()
    features, mask = _inputs()
    with pytest.raises(RuntimeError, match="eval mode"):
        model.forward_conditions(features, mask, index_to_mask(torch.arange(7)))


@pytest.mark.parametrize("batch,length", [(1, 1), (2, 3)])
def test_small_inputs_run_their_conditions_as_one_stacked_forward(batch, length, monkeypatch):
    """Below `STACKED_ROWS` the conditions run as one forward over a stacked batch: per-call overhead is paid once.
    Each condition's output equals its separate forward up to float rounding, routing included."""
    model = _model()
    g = torch.Generator().manual_seed(1)
    features = {m: torch.randn(batch, length, DIMS[m.value], generator=g) for m in MODALITIES}
    mask = torch.ones(batch, length, dtype=torch.bool)
    available = torch.rand(batch, length, 3, generator=torch.Generator().manual_seed(2)) > 0.3
    assert batch * length * 7 <= STACKED_ROWS
    stacked_calls = []
    original = model._stacked_conditions
    monkeypatch.setattr(model, "_stacked_conditions", lambda *a: stacked_calls.append(1) or original(*a))
    with torch.no_grad():
        complete = torch.ones(7, 3, dtype=torch.bool)
        for masks, combinations in ((index_to_mask(torch.arange(7)), None), (complete, list(range(7)))):
            together = model.forward_conditions(features, mask, masks, available, combinations)
            for c, out in enumerate(together):
                routing = None if combinations is None else torch.full((batch,), c)
                alone = model(features, mask, masks[c].expand(batch, -1), available, routing)
                for a, b in zip(_fields(out), _fields(alone), strict=True):
                    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert len(stacked_calls) == 2
