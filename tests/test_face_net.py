"""The face network of the offline vision encoder: its invariants, its storage, the determinism of its training, and
(with the shipped weights) what it recognises on real faces."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mculora.encoders import EncoderMismatch, EncoderUnavailable, build_encoders, check_encoders
from mculora.encoders.base import weights_digest
from mculora.encoders.face_geometry import DIM as GEOMETRY_DIM
from mculora.encoders.face_net import (
    INPUT_SIZE,
    NUM_CLASSES,
    WEIGHTS_FILE,
    FaceExpressionEncoder,
    FaceExpressionNet,
    load_face_net,
    network_crop,
    save_face_net,
)
from mculora.modalities import Modality
from mculora.preprocess.vision import FaceFinder
from mculora.recipes.encoder_training import class_weights
from mculora.recipes.face import FaceTrainConfig, accuracy, augment, load_images, train_face_net
from mculora.recipes.face_crops import path_crops
from mculora.recipes.sources import EKMAN, Item, fer2013_items

HAPPINESS = EKMAN.index("happiness")
ASSETS = Path(__file__).resolve().parents[1] / "assets" / "examples"


def _images(count: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (count, 48, 48), dtype=np.uint8))


def test_network_shapes_and_exposure_invariance():
    torch.manual_seed(0)
    net = FaceExpressionNet().eval()
    images = _images(4)
    features = net.embed(images)
    assert features.shape == (4, net.embedding_dim) and net(images).shape == (4, NUM_CLASSES)
    # Per-image standardisation: halving the contrast and brightening the image change nothing.
    torch.testing.assert_close(net.embed(images.float() * 0.5 + 40), features, atol=1e-4, rtol=1e-4)


def test_weights_round_trip_and_digest(tmp_path):
    torch.manual_seed(0)
    net = FaceExpressionNet((8, 8, 16, 16)).eval()
    save_face_net(net, tmp_path / WEIGHTS_FILE)
    loaded = load_face_net(tmp_path / WEIGHTS_FILE)
    images = _images(2)
    assert torch.equal(loaded(images), net(images)) and weights_digest(loaded.state_dict()) == weights_digest(
        net.state_dict()
    )
    with torch.no_grad():
        loaded.head.bias += 1
    assert weights_digest(loaded.state_dict()) != weights_digest(net.state_dict())


def test_unusable_weights_say_why(tmp_path):
    with pytest.raises(EncoderUnavailable, match=f"needs the face network's weights.*{WEIGHTS_FILE}"):
        load_face_net(tmp_path / WEIGHTS_FILE)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(EncoderUnavailable, match="not a usable face network"):
        load_face_net(tmp_path / WEIGHTS_FILE)
    with pytest.raises(EncoderUnavailable, match="checkpoint .*directory"):
        build_encoders("offline", modalities=[Modality.VISION])


def test_augmentation_is_seeded():
    images = _images(6)
    first = augment(images, torch.Generator().manual_seed(1))
    assert first.shape == (6, INPUT_SIZE, INPUT_SIZE) and first.dtype == torch.float32
    assert torch.equal(first, augment(images, torch.Generator().manual_seed(1)))
    assert not torch.equal(first, augment(images, torch.Generator().manual_seed(2)))


def test_class_weights_follow_inverse_square_root_frequency():
    counts = [400, 25, 100, 400, 400, 100, 100]
    weights = class_weights(torch.cat([torch.full((n,), c) for c, n in enumerate(counts)]), len(counts))
    assert weights.mean() == pytest.approx(1.0)
    assert weights[1] / weights[0] == pytest.approx(4.0) and weights[2] / weights[0] == pytest.approx(2.0)


def test_training_is_bit_reproducible(tmp_path):
    """Same seed, same data -> identical weights: what keeps `make checkpoint` bit-reproducible."""
    rng = np.random.default_rng(0)
    items = []
    for index in range(70):
        path = tmp_path / f"face{index}.png"
        Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(path)
        label, split = EKMAN[index % len(EKMAN)], "test" if index >= 63 else "val" if index >= 56 else "train"
        items.append(Item(f"face{index}", Modality.VISION, label, split, "fer2013", f"g{index}", path=path))
    config = FaceTrainConfig(epochs=2, batch_size=16)
    digests = [weights_digest(train_face_net(config, items, log=lambda line: None)[0].state_dict()) for _ in range(2)]
    assert digests[0] == digests[1]


# -- the shipped face network ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped(demo_checkpoint):
    return FaceExpressionEncoder(demo_checkpoint / WEIGHTS_FILE)


def test_shipped_encoder_dimension_and_checkpoint_record(demo_checkpoint, shipped, astronaut_face, tmp_path):
    assert shipped.dim == GEOMETRY_DIM + 192 + NUM_CLASSES == 380
    vectors = shipped.encode([astronaut_face])
    assert vectors.shape == (1, 380) and vectors.dtype == torch.float32 and torch.isfinite(vectors).all()
    encoders = build_encoders("offline", weights=demo_checkpoint)
    record = json.loads((demo_checkpoint / "config.json").read_text())["encoders"]
    assert record["vision"] == shipped.spec() == encoders[Modality.VISION].spec()
    # Another face network (here: the same one, slightly changed) has another name, which the checkpoint refuses.
    changed = load_face_net(demo_checkpoint / WEIGHTS_FILE)
    with torch.no_grad():
        changed.head.bias += 0.1
    save_face_net(changed, tmp_path / WEIGHTS_FILE)
    other = FaceExpressionEncoder(tmp_path / WEIGHTS_FILE)
    assert other.dim == shipped.dim and other.name != shipped.name
    with pytest.raises(EncoderMismatch, match="different encoders"):
        check_encoders(record, {**encoders, Modality.VISION: other})


@pytest.fixture(scope="module")
def astronaut_face():
    return FaceFinder().find(ASSETS / "astronaut.jpg")


def test_shipped_network_finds_the_bundled_smile(shipped, astronaut_face):
    crop = torch.from_numpy(network_crop(astronaut_face))[None]
    assert int(shipped.net(crop).argmax()) == HAPPINESS


def test_shipped_network_meets_its_card_on_fer_public_test(demo_checkpoint, shipped, shared_data, tmp_path):
    """The network alone on FER-2013 PublicTest, as the model card reports it: on the crops the run-time path cuts
    (one face-mesh pass, `mculora.recipes.face_crops`, the faces the mesh finds); happy faces go to happiness."""
    card = json.loads((demo_checkpoint / "metrics.json").read_text())["face_net"]["test_accuracy"]
    test = [item for item in fer2013_items(shared_data) if item.split == "test"]
    images, labels = load_images(test, path_crops(test, tmp_path / "crops"))
    assert len(labels) >= 0.95 * len(test)
    measured, predicted = accuracy(shipped.net, images, labels)
    assert measured == pytest.approx(card, abs=0.003) and measured >= 0.63
    happy = labels == HAPPINESS
    assert float((predicted[happy] == HAPPINESS).float().mean()) >= 0.8


def test_encoding_from_a_cached_mesh_pass_is_the_served_encoding(shipped, shared_data):
    """The recipe encodes its faces from the crops and geometry it keeps from one mesh pass
    (`mculora.recipes.face_crops`); that must be the vector the demo computes from the same image."""
    from mculora.encoders.face_geometry import describe

    paths = sorted((shared_data / "fer2013" / "images" / "test" / "happy").glob("*.jpg"))[:6]
    faces = [FaceFinder().find(path) for path in paths]
    crops = np.stack([network_crop(face) for face in faces])
    geometry = np.stack([describe(face.landmarks) for face in faces])
    torch.testing.assert_close(shipped.encode_crops(crops, geometry, batch_size=4), shipped.encode(faces))
    assert shipped.encode_crops(crops[:0], geometry[:0]).shape == (0, shipped.dim)
