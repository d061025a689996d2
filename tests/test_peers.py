"""The peer methods (MPLMM, Wander, CGGM): their invariants, their checkpoints, and short real training runs."""

import json
from pathlib import Path

import pytest
import torch

from mculora.checkpoint import load_checkpoint
from mculora.data import Batch
from mculora.dpft import ModalityDraw
from mculora.modalities import MODALITIES, Modality, combination_index, index_to_mask
from mculora.training.config import TrainConfig
from mculora.training.evaluate import CONDITIONS
from mculora.training.methods import build_method
from mculora.training.methods.cggm import CGGMMethod
from mculora.training.train import main, optimizer_for, train_step

DIMS = {"audio": 12, "text": 10, "vision": 8}
SMALL = ["--model-hidden", "32", "--model-depth", "1"]
PEERS = ["mplmm", "wander", "cggm"]
SPEECH = Path(__file__).resolve().parents[1] / "assets" / "examples" / "happy_speech.wav"


def _config(**settings) -> TrainConfig:
    config = TrainConfig()
    config.model.hidden, config.model.depth, config.model.dropout = 16, 1, 0.0
    for section, values in settings.items():
        for name, value in values.items():
            setattr(getattr(config, section), name, value)
    return config


def _network(method: str, **settings):
    torch.manual_seed(0)
    return build_method(method, _config(**settings)).build_model(DIMS, 4).eval()


def _batch(size: int = 6, length: int = 3, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    utterances = torch.ones(size, length, dtype=torch.bool)
    utterances[0, -1] = False  # one padded utterance
    return Batch(
        features={m: torch.randn(size, length, DIMS[m.value], generator=g) for m in MODALITIES},
        available=utterances[:, :, None].expand(-1, -1, 3).clone(),
        utterance_mask=utterances,
        labels=torch.randint(0, 4, (size, length), generator=g) * utterances,
        speakers=torch.zeros(size, length, dtype=torch.long),
        names=[f"d{i}" for i in range(size)],
    )


def _logits(net, batch: Batch, condition: str) -> torch.Tensor:
    mask = index_to_mask(torch.full((batch.batch_size,), combination_index(condition)))
    with torch.no_grad():
        return net(batch.features, batch.utterance_mask, mask, batch.available).logits


@pytest.mark.parametrize("method", [*PEERS, "cggm-on-mcu-lora"])
@pytest.mark.parametrize("condition", CONDITIONS)
def test_masked_modalities_cannot_change_the_output(method, condition):
    settings = {"cggm": {"backbone": "mcu-lora"}} if method == "cggm-on-mcu-lora" else {}
    net = _network(method.split("-on-")[0], **settings)
    batch = _batch()
    before = _logits(net, batch, condition)
    assert before.shape == (6, 3, 4) and torch.isfinite(before).all()
    for m in MODALITIES:
        if m.letter not in condition:
            batch.features[m] = batch.features[m] * 100 + 7
    torch.testing.assert_close(_logits(net, batch, condition), before, rtol=0, atol=0)


def test_wander_fusion_is_a_sum_of_products_and_survives_missing_modalities():
    net = _network("wander", wander={"rank": 4, "cp_rank": 3})
    adapter = net.adapter
    encoded = [torch.randn(2, 1, 16) for _ in MODALITIES]
    present = torch.ones(2, 1, 3, dtype=torch.bool)
    # The CP form, written out term by term: z = Σ_r Π_m ([GELU(D_m x_m) ; 1] W_r^m).
    expected = 0
    for r in range(3):
        term = 1
        for j, x in enumerate(encoded):
            extended = torch.cat([torch.nn.functional.gelu(adapter.down[j](x)), torch.ones(2, 1, 1)], dim=-1)
            term = term * (extended @ adapter.factors[j, r])
        expected = expected + term
    torch.testing.assert_close(adapter.fused(encoded, present), expected)
    # Any modality (or two) absent: the fused vector stays finite and non-zero (an absent modality contributes its
    # learned "absent" row, not a zero that would wipe out the product).
    for absent in ([0], [1], [2], [0, 1], [1, 2]):
        partial = present.clone()
        partial[:, :, absent] = False
        fused = adapter.fused(encoded, partial)
        assert torch.isfinite(fused).all() and (fused.abs().sum(-1) > 1e-6).all()


def test_mplmm_prompts_follow_the_missing_type():
    net = _network("mplmm", mplmm={"prompt_length": 4, "prompt_dim": 6})
    masks = torch.tensor([[1, 1, 1], [1, 0, 1], [1, 0, 1], [0, 0, 1]], dtype=torch.bool)
    prompts = net.type_prompts(masks)
    assert prompts.shape == (4, 3, 4, 16)
    torch.testing.assert_close(prompts[1], prompts[2])  # same missing type, same prompts
    assert not torch.allclose(prompts[0], prompts[1]) and not torch.allclose(prompts[1], prompts[3])
    # All 7 missing types get different prompts.
    every = index_to_mask(torch.arange(7))
    flat = net.type_prompts(every).flatten(1)
    assert torch.cdist(flat, flat).add(torch.eye(7)).min() > 0
    # The generated stand-in for a missing modality depends on the present ones: with text missing, changing the
    # audio changes the output even with only audio and vision present.
    batch = _batch()
    before = _logits(net, batch, "av")
    batch.features[Modality.AUDIO] += 1.0
    assert not torch.allclose(_logits(net, batch, "av"), before)


def test_cggm_modulation_coefficients():
    method = CGGMMethod(_config())
    method.modulation(torch.tensor([0.4, 0.4, 0.4]))
    coefficients = method.modulation(torch.tensor([0.5, 0.6, 0.7]))
    # Δ = (0.1, 0.2, 0.3), ΣΔ = 0.6: coeff = (0.5, 0.4, 0.3) / 0.6; the fastest-improving modality is damped most.
    torch.testing.assert_close(coefficients, torch.tensor([0.5, 0.4, 0.3]) / 0.6)
    # A modality absent from the batch (NaN) keeps coefficient 1 and the others are compared among themselves.
    coefficients = method.modulation(torch.tensor([0.6, float("nan"), 0.8]))
    torch.testing.assert_close(coefficients, torch.tensor([0.1 / 0.2, 1.0, 0.1 / 0.2]))


@pytest.mark.parametrize("backbone", ["baseline", "mcu-lora"])
def test_cggm_scales_only_the_modality_encoders(backbone, monkeypatch):
    config = _config(cggm={"backbone": backbone, "rho": 1.3})
    torch.manual_seed(0)
    method = build_method("cggm", config)
    model = method.build_model(DIMS, 4).train()
    batch = _batch()
    method.before_training(model, method.make_sampler(), [batch], torch.device("cpu"))
    routing = ModalityDraw.of(torch.tensor([0, 0, 1, 2, 4, 6]))
    fixed = torch.tensor([0.5, 0.8, 1.2])
    monkeypatch.setattr(method, "modulation", lambda accuracy: fixed)
    gradients = {}

    def record(*args):
        gradients.update({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        CGGMMethod.after_backward(method, *args)

    monkeypatch.setattr(method, "after_backward", record)
    train_step(model, method, torch.optim.SGD(model.parameters(), lr=0.0), batch, routing, "classification")
    encoder_of = {id(p): j for j, m in enumerate(MODALITIES) for p in model.modality_parameters(m)}
    scaled = unscaled = 0
    for name, parameter in model.named_parameters():
        if name not in gradients:
            continue
        j = encoder_of.get(id(parameter))
        factor = 1.0 if j is None else 1.3 * float(fixed[j])
        torch.testing.assert_close(parameter.grad, gradients[name] * factor, msg=name)
        scaled, unscaled = scaled + (j is not None), unscaled + (j is None)
    assert scaled and unscaled  # both groups were exercised (fusion and head are never scaled)


def test_two_stage_recipes_freeze_what_the_paper_freezes():
    mplmm = build_method("mplmm", _config())
    net = mplmm.build_model(DIMS, 4)
    mplmm.freeze_after_pretraining(net)
    trainable = {name for name, p in net.named_parameters() if p.requires_grad}
    assert all(name.startswith(("in_proj.", "head.", "generate.", "mix.")) or "." not in name for name in trainable)
    assert not any(name.startswith(("layers.", "fusion.")) for name in trainable)
    wander = build_method("wander", _config())
    net = wander.build_model(DIMS, 4)
    assert not any(id(p) in {id(q) for q in net.adapter.parameters()} for p in wander.pretraining_parameters(net))
    wander.freeze_after_pretraining(net)
    assert {name.split(".")[0] for name, p in net.named_parameters() if p.requires_grad} == {"adapter", "head"}
    counts = net.parameter_counts()
    assert 0 < counts["trainable"] < counts["total"]
    assert len(optimizer_for(net, _config()).param_groups[0]["params"]) == sum(
        p.requires_grad for p in net.parameters()
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [
        ["--method", "mplmm"],
        ["--method", "wander"],
        ["--method", "cggm"],
        ["--method", "mplmm", "--mplmm-pretrain-epochs", "6"],
        ["--method", "wander", "--wander-pretrain-epochs", "6"],
    ],
    ids=["mplmm", "wander", "cggm", "mplmm-two-stage", "wander-two-stage"],
)
def test_peer_learns_well_above_chance_and_reloads(trainer_args, tmp_path, extra):
    out = tmp_path / "run"
    main(trainer_args(*extra, "--model-hidden", "64", "--model-depth", "1", "--lr", "1e-3", epochs=12))
    results = json.loads((out / "results.json").read_text())
    accuracy = {c: results["conditions"][c]["accuracy"] for c in CONDITIONS}
    # Chance is 0.25; audio and vision each carry one binary factor of the class, so both are needed for atv.
    assert accuracy["atv"] >= 0.7 and accuracy["av"] > max(accuracy["a"], accuracy["v"]) + 0.1, accuracy
    model, config = load_checkpoint(out / "checkpoints" / "seed66-fold1")
    # CGGM modulates its backbone method's network: by default the baseline's, the late-fusion backbone.
    architecture = {"mplmm": "mplmm", "wander": "wander", "cggm": "late-fusion"}[extra[1]]
    assert config.method == extra[1] and type(model).architecture == architecture


@pytest.mark.parametrize("method", ["mplmm", "wander"])
def test_a_peer_checkpoint_serves_through_the_predictor(method, demo_checkpoint, tmp_path):
    """What the demo's method selector will load: a peer network over the demo's encoders (untrained here: this
    checks the plumbing, not recognition)."""
    from mculora.checkpoint import CheckpointConfig, read_checkpoint_config, save_checkpoint
    from mculora.encoders import copy_encoder_weights
    from mculora.serving.predictor import Predictor

    shipped = read_checkpoint_config(demo_checkpoint)
    network = build_method(method, _config()).build_model(shipped.model.feature_dims, len(shipped.label_names))
    config = CheckpointConfig(
        model=network.config,
        task=shipped.task,
        label_names=shipped.label_names,
        method=method,
        architecture=network.architecture,
        encoders=shipped.encoders,
    )
    save_checkpoint(tmp_path, network, config)
    copy_encoder_weights(demo_checkpoint, tmp_path)
    predictor = Predictor.from_pretrained(tmp_path, device="cpu")
    assert type(predictor.model) is type(network) and predictor.config.method == method
    inputs = {"text": "I am so happy today", "audio": str(SPEECH)}
    prediction = predictor.predict(**inputs)
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0) and prediction.label in shipped.label_names
    assert len(predictor.predict_combinations(**inputs)) == 3  # a, t and at
    # The served probabilities are the network's own softmax on the encoded inputs (audio and text present, vision
    # absent), computed here straight from the saved network.
    dims, vectors = shipped.model.feature_dims, prediction.features.vectors
    features = {m: vectors.get(m, torch.zeros(dims[m.value]))[None, None].float() for m in MODALITIES}
    present = torch.tensor([[[m in vectors for m in MODALITIES]]])
    with torch.inference_mode():
        logits = network.eval()(features, torch.ones(1, 1, dtype=torch.bool), present[0], present).logits[0, -1]
    direct = dict(zip(shipped.label_names, logits.softmax(-1).tolist(), strict=True))
    assert prediction.probabilities == pytest.approx(direct, abs=1e-6)
    assert max(direct.values()) - min(direct.values()) > 1e-3  # random weights: not a uniform answer
