"""MCLA's combination adapters must learn: gradient flow and movement measured on models trained briefly on the
synthetic benchmark, under the default combination stream and under the paper-faithful option."""

import json

import pytest
import torch

from mculora.checkpoint import load_checkpoint
from mculora.data import collate_dialogues, load_corpus
from mculora.lora import SHARED, adapter_layers
from mculora.modalities import COMBINATIONS
from mculora.training.adapter_health import DEAD_RATIO, adapter_report, decoupling, on_path
from mculora.training.adapter_health import main as inspect_main
from mculora.training.config import parse_args
from mculora.training.methods import build_method
from mculora.training.train import run, seed_everything

PAPER = ["--model-combination-stream", "chain", "--lora-plus-ratio", "1"]
EPOCHS = 10


@pytest.fixture(scope="module")
def trained(synthetic_iemocap, tmp_path_factory):
    """variant -> (checkpoint folder, trainer config, probe batches from the test split); default architecture."""
    corpus = load_corpus("iemocap4", synthetic_iemocap)
    split = corpus.splits(0.1, seed=0)[0]
    batches = [collate_dialogues([corpus.dialogues[n] for n in split.test[:16]])]
    models = {}
    for name, extra in (("default", []), ("paper", PAPER)):
        out = tmp_path_factory.mktemp(name)
        argv = ["--dataset", "iemocap4", "--data-root", str(synthetic_iemocap), "--epochs", str(EPOCHS)]
        config = parse_args([*argv, "--folds", "1", "--seeds", "5", "--out", str(out), *extra])
        run(config)
        models[name] = (out / "checkpoints" / "seed5-fold1", config, batches)
    return models


def _report(trained, name):
    folder, _config, batches = trained[name]
    model, config = load_checkpoint(folder)
    return model, adapter_report(model, batches, config.task)


@pytest.mark.slow
def test_every_routed_adapter_of_the_default_model_gets_gradient(trained):
    model, report = _report(trained, "default")
    layers = adapter_layers(model)
    assert len(layers) == 3 + 3 * 4 * 2 + 2  # in_proj x3, fc1/fc2 x depth 4 x 3 modalities, fusion, head
    for layer in layers:
        for k, combination in enumerate(COMBINATIONS):
            if on_path(layer, k):
                assert report.ratio[layer][combination] >= DEAD_RATIO, (layer, combination, report.ratio[layer])
    assert report.dead() == []


@pytest.mark.slow
def test_paper_faithful_option_leaves_the_deep_combination_adapters_dead(trained):
    """The reference code's chain: only the layers next to the head learn; the input projections and MLP layers
    of every combination get (numerically) no gradient."""
    _model, report = _report(trained, "paper")
    dead = set(report.dead())
    for layer, ratios in report.ratio.items():
        if layer.startswith(("in_proj.", "layers.")):
            assert all((layer, k) in dead for k in ratios), (layer, ratios)
    assert all(r >= DEAD_RATIO for r in report.ratio["head"].values())


@pytest.mark.slow
def test_training_moves_every_combination_adapter_on_its_path(trained):
    """Compared with the initial weights (rebuilt from the run's seed), every routed adapter's update B A grew to at
    least 1 % of the shared adapter's in the same layer, in every layer, not only next to the head."""
    folder, config, _batches = trained["default"]
    model, _ = load_checkpoint(folder)
    seed_everything(5)
    initial = build_method(config.method, config).build_model(
        {
            m: d["dim"]
            for m, d in json.loads((folder / "config.json").read_text())["encoders"].items()
            if m != "profile"
        },
        4,
    )
    start, end = adapter_layers(initial), adapter_layers(model)

    def delta(name: str, adapter: str) -> float:
        before = start[name].lora_B[adapter].weight @ start[name].lora_A[adapter].weight
        after = end[name].lora_B[adapter].weight @ end[name].lora_A[adapter].weight
        return float((after - before).detach().norm())

    for name in end:
        shared = delta(name, SHARED)
        for k, combination in enumerate(COMBINATIONS):
            if on_path(name, k):
                moved = delta(name, combination)
                assert moved >= 0.01 * shared, (name, combination, moved, shared)


@pytest.mark.slow
def test_default_model_decouples_combinations_and_the_paper_model_does_not(trained):
    figures = {}
    for name in ("default", "paper"):
        folder, _config, batches = trained[name]
        model, _ = load_checkpoint(folder)
        figures[name] = decoupling(model, batches)
    for combination in COMBINATIONS:
        # One input's combination representation differs across combinations by a visible fraction by default...
        assert figures["default"][combination]["distinctness"] > 0.01, figures["default"]
        # ...and barely at all when the combination streams do not learn (only base-path terms).
        assert figures["paper"][combination]["distinctness"] < figures["default"][combination]["distinctness"] / 3


@pytest.mark.slow
def test_inspect_command_prints_the_tables_and_flags_dead_adapters(trained, capsys, tmp_path):
    assert inspect_main([str(trained["default"][0]), "--json", str(tmp_path / "report.json")]) == 0
    text = capsys.readouterr().out
    assert "dead adapters: 0" in text and "in_proj.audio" in text and "distinctness" in text
    assert json.loads((tmp_path / "report.json").read_text())["dead"] == []
    assert inspect_main([str(trained["paper"][0])]) == 1  # dead adapters -> exit status 1
    assert "in_proj.audio/atv" in capsys.readouterr().out


def test_trainer_logs_every_adapter_each_epoch(trainer_args, tmp_path):
    from mculora.training.train import main

    main(trainer_args("--model-hidden", "16", "--model-depth", "1", epochs=2))
    log = [json.loads(line) for line in (tmp_path / "run" / "training_log.jsonl").read_text().splitlines()]
    assert len(log) == 2
    adapters = log[-1]["adapters"]
    assert set(adapters["weight"]["head"]) == {SHARED, *COMBINATIONS}
    assert set(adapters["gradient"]["layers.text.0.fc2"]) == {SHARED, *COMBINATIONS}
    assert set(adapters["ratio"]["in_proj.vision"]) == {"atv", "av", "tv", "v"}  # the combinations with vision
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(results["decoupling"]) == set(COMBINATIONS) and "dead_adapters_max" in results


def test_reference_protocol_selects_on_test_and_uses_the_reference_settings(trainer_args, tmp_path):
    from mculora.dpft import CombinationSampler, DPFTConfig
    from mculora.training.config import parse_args
    from mculora.training.metrics import PRIMARY_METRIC
    from mculora.training.train import apply_protocol, main

    args = trainer_args("--protocol", "reference", "--model-hidden", "16", "--model-depth", "1", epochs=3)
    # The settings: no validation carve-out, the reference divergence and reference point.
    settings = apply_protocol(parse_args(args))
    assert settings.val_fraction == 0.0 and settings.dpft.divergence == "reference"
    assert settings.dpft.reference == "first_epoch"
    main(args)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["protocol"] == "reference"
    log = [json.loads(line) for line in (tmp_path / "run" / "training_log.jsonl").read_text().splitlines()]
    # DPFT's reference point is the first measurement after epoch 1: nothing moves before epoch 2.
    assert log[0]["keep_probability"] == {"audio": 0.5, "text": 0.5, "vision": 0.5}
    # Selection reads the test split: the selected epoch's "validation" scores are the reported test results.
    metric = PRIMARY_METRIC["classification"]
    best = max(log, key=lambda entry: entry["val_score"])
    for condition, value in best["val"].items():
        assert value == pytest.approx(results["conditions"][condition][metric], abs=1e-4), condition
    # One combination per batch: every sample follows the first dialogue's first speaker's draw.
    sampler = CombinationSampler(DPFTConfig())
    speakers = torch.tensor([[0, 1, 0], [1, 0, 1], [0, 0, 1]])
    for seed in range(20):
        routing = sampler.sample_reference(speakers, torch.Generator().manual_seed(seed))
        assert routing.combination.unique().numel() == 1
        assert (routing.modality_mask == routing.modality_mask[0]).all()


def test_old_checkpoints_without_the_stream_setting_load_as_the_chain(tmp_path):
    from mculora.checkpoint import CheckpointConfig, save_checkpoint
    from mculora.model import MCULoRA, MCULoRAConfig

    model = MCULoRA(MCULoRAConfig(feature_dims={"audio": 3, "text": 4, "vision": 5}, num_outputs=2, hidden=8, depth=1))
    config = CheckpointConfig(
        model=model.config, task="classification", label_names=["x", "y"], method="m", encoders={"profile": "test"}
    )
    save_checkpoint(tmp_path, model, config)
    data = json.loads((tmp_path / "config.json").read_text())
    del data["model"]["combination_stream"]
    (tmp_path / "config.json").write_text(json.dumps(data))
    loaded, _ = load_checkpoint(tmp_path)
    assert loaded.config.combination_stream == "chain"
    torch.testing.assert_close(loaded.state_dict()["head.base.weight"], model.state_dict()["head.base.weight"])
