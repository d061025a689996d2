"""The fine-tuned text network of the offline text encoder: its split into frozen and tuned layers, its storage, the
determinism of its training, and (with the shipped weights) what it recognises."""

import json

import pytest
import torch

from mculora.encoders import EncoderUnavailable, build_encoders
from mculora.encoders.base import weights_digest
from mculora.encoders.text_net import (
    NUM_CLASSES,
    WEIGHTS_FILE,
    EmotionTextEncoder,
    load_text_net,
    pretrained_text_net,
    save_text_net,
)
from mculora.modalities import Modality
from mculora.recipes.sources import EKMAN, Item
from mculora.recipes.text import TextTrainConfig, train_text_net


@pytest.fixture(scope="module")
def fresh():
    torch.manual_seed(0)
    return pretrained_text_net()


def test_lower_then_upper_is_the_sentence_model(fresh):
    """Split in two, the network still computes the packaged sentence model: the same token states, padding or not."""
    net, tokenizer = fresh
    texts = ["short", "a much longer sentence that needs padding for the first one"]
    tokens = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        pooled = net.upper(net.lower(tokens), tokens["attention_mask"])
        whole = net.base(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).float()
        torch.testing.assert_close(pooled, (whole * mask).sum(1) / mask.sum(1), atol=1e-5, rtol=1e-4)
        alone = tokenizer(texts[:1], return_tensors="pt")
        torch.testing.assert_close(
            net.upper(net.lower(alone), alone["attention_mask"])[0], pooled[0], atol=1e-5, rtol=1e-4
        )


def test_only_the_top_layers_and_head_are_stored(fresh, tmp_path):
    net, _ = fresh
    state = net.tuned_state()
    assert {name.split(".")[3] for name in state if name.startswith("base.")} == {"4", "5"}
    assert state["head.weight"].shape == (NUM_CLASSES, 384)
    assert 3_000_000 < sum(t.numel() for t in state.values()) < 4_000_000
    save_text_net(net, tmp_path / WEIGHTS_FILE)
    loaded, _ = load_text_net(tmp_path / WEIGHTS_FILE)
    assert weights_digest(loaded.tuned_state()) == weights_digest(net.tuned_state())


def test_unusable_weights_say_why(tmp_path):
    with pytest.raises(EncoderUnavailable, match=f"needs the fine-tuned text network's weights.*{WEIGHTS_FILE}"):
        load_text_net(tmp_path / WEIGHTS_FILE)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(EncoderUnavailable, match="not a usable text network"):
        load_text_net(tmp_path / WEIGHTS_FILE)
    from safetensors.torch import save_file

    save_file({"head.weight": torch.zeros(3, 384)}, str(tmp_path / WEIGHTS_FILE))
    with pytest.raises(EncoderUnavailable, match="MiniLM's top layers"):
        load_text_net(tmp_path / WEIGHTS_FILE)
    with pytest.raises(EncoderUnavailable, match="checkpoint .*directory"):
        build_encoders("offline", modalities=[Modality.TEXT])


def test_training_is_bit_reproducible_and_touches_only_the_tuned_layers():
    """Same seed, same texts -> identical weights (what keeps `make checkpoint` bit-reproducible); the frozen layers
    are the packaged ones."""
    words = {"anger": "furious", "happiness": "delighted", "sadness": "miserable", "neutral": "the table"}
    items = [
        Item(f"t{i}", Modality.TEXT, label, split, "goemotions", f"g{i}", text=f"I am {word} number {i}")
        for i in range(48)
        for label, word in [list(words.items())[i % 4]]
        for split in ["val" if i >= 40 else "test" if i >= 36 else "train"]
    ]
    config = TextTrainConfig(epochs=1, batch_size=8, warmup_steps=2)
    nets = [train_text_net(config, items, log=lambda line: None) for _ in range(2)]
    assert weights_digest(nets[0][0].tuned_state()) == weights_digest(nets[1][0].tuned_state())
    packaged, _ = pretrained_text_net()
    trained = nets[0][0].state_dict()
    for name, tensor in packaged.state_dict().items():
        frozen = not name.startswith(("base.encoder.layer.4.", "base.encoder.layer.5.", "head."))
        assert torch.equal(trained[name], tensor) == frozen, name
    assert set(nets[0][1]) >= {"history", "test_macro_f1", "tuned_parameters"}


# -- the shipped text network ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped(demo_checkpoint):
    return EmotionTextEncoder(demo_checkpoint / WEIGHTS_FILE)


def test_shipped_encoder_dimension_and_checkpoint_record(demo_checkpoint, shipped):
    assert shipped.dim == 384 + NUM_CLASSES == 391
    vectors = shipped.encode(["I am so happy today", "what a joyful day", "I am furious"])
    assert vectors.shape == (3, 391) and vectors.dtype == torch.float32
    torch.testing.assert_close(vectors[:, :384].norm(dim=1), torch.ones(3))
    record = json.loads((demo_checkpoint / "config.json").read_text())["encoders"]
    assert record["text"] == shipped.spec()


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("I am so happy today, this is wonderful!", "happiness"),
        ("I am furious, how dare you do this to me", "anger"),
        ("I miss her so much, I cried all night", "sadness"),
        ("That is terrifying, I am scared to go outside", "fear"),
        ("Wow, I did not expect that at all!", "surprise"),
        ("That is disgusting, gross", "disgust"),
    ],
)
def test_shipped_network_recognises_plain_sentences(shipped, text, label):
    logits = shipped.encode([text])[0, 384:]
    assert EKMAN[int(logits.argmax())] == label
