"""ResNet50 classifier: outputs, weight files (safetensors/.pth), wrong weights refused clearly."""

from __future__ import annotations

import json

import pytest
import torch

from gistrisk.errors import InputError
from gistrisk.pathology.classes import CLASSES
from gistrisk.pathology.model import (
    TissueClassifier,
    build_model,
    load_backbone,
    load_classifier,
    read_state_dict,
    save_classifier,
)

HEADER = {"classes": list(CLASSES), "tile_size": 224, "mpp": 0.5, "mean": [0.485, 0.456, 0.406],
          "std": [0.229, 0.224, 0.225]}


@pytest.fixture(scope="module")
def model() -> TissueClassifier:
    return build_model(seed=0).eval()


def test_forward_logits_and_gap_features(model):
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        logits, feats = model(x)
        assert logits.shape == (2, 6) and feats.shape == (2, 2048)
        # the logits are the head applied to the pooled features (features are the GAP vector)
        torch.testing.assert_close(logits, model.fc(feats))
        assert (feats >= 0).all()  # post-ReLU average pool


def test_seeded_init_is_reproducible(model):
    other = build_model(seed=0)
    for (k, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        assert torch.equal(a, b), k
    assert not torch.equal(build_model(seed=1).conv1.weight, model.conv1.weight)


def test_state_dict_keys_are_torchvision_resnet50(model):
    from torchvision.models import resnet50

    tv = resnet50(weights=None)
    assert set(model.state_dict()) == set(tv.state_dict())


def test_safetensors_round_trip_with_header(model, tmp_path):
    path = tmp_path / "classifier.safetensors"
    save_classifier(path, model, HEADER)
    loaded, header = load_classifier(tmp_path)
    assert header["classes"] == list(CLASSES) and header["architecture"] == "torchvision.resnet50"
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x)[0], model(x)[0], rtol=0, atol=0)
    # the file holds only tensors and a JSON header (no pickle)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        assert json.loads(f.metadata()["gistrisk"])["tile_size"] == 224


def test_imagenet_pth_loads_backbone_and_keeps_fresh_head(tmp_path):
    from torchvision.models import resnet50

    torch.manual_seed(3)
    imagenet_like = resnet50(weights=None)  # 1000-class head, as torchvision's ImageNet file
    pth = tmp_path / "resnet50-imagenet.pth"
    torch.save(imagenet_like.state_dict(), pth)
    m = build_model(seed=0)
    head_before = m.fc.weight.clone()
    info = load_backbone(m, pth)
    assert info["head_loaded"] is False
    assert torch.equal(m.layer4[2].conv3.weight, imagenet_like.layer4[2].conv3.weight)
    assert torch.equal(m.fc.weight, head_before)


def test_not_a_resnet50_is_refused(tmp_path):
    from safetensors.torch import save_file
    from torchvision.models import resnet18

    p = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in resnet18(weights=None).state_dict().items()}, str(p))
    with pytest.raises(InputError, match="not a torchvision ResNet50") as e:
        load_backbone(build_model(), p)
    assert str(p) in str(e.value)


def test_wrong_class_count_is_refused(tmp_path):
    five = TissueClassifier(num_classes=5)
    save_classifier(tmp_path / "classifier.safetensors", five, {**HEADER, "classes": list(CLASSES)})
    with pytest.raises(InputError, match="wrong number of classes.*5 classes") as e:
        load_classifier(tmp_path)
    assert "classifier.safetensors" in str(e.value)


def test_weights_without_header_or_garbage_are_refused(model, tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(p))
    with pytest.raises(InputError, match="no gistrisk header"):
        load_classifier(p)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read weights"):
        read_state_dict(junk)
