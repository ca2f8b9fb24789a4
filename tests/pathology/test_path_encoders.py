"""Tile encoders as a choice: the paper's ResNet50 by default, or a timm model from local weights (a
safetensors file, or a timm/Hugging Face folder with config.json), with nothing downloaded. Small
random-weight timm models stand in for the pathology foundation models; tiles are real H&E pixels."""

from __future__ import annotations

import json
import socket

import numpy as np
import pandas as pd
import pytest
import timm
import torch

from gistrisk.errors import InputError
from gistrisk.extraction import read_extraction
from gistrisk.pathology.classes import CLASSES, IMAGENET_MEAN, IMAGENET_STD
from gistrisk.pathology.data import TileDataset, to_input
from gistrisk.pathology.encoders import RESNET50, EncoderSpec, parse_encoder_args, parse_rgb, resolve_encoder
from gistrisk.pathology.engine import InferenceConfig, predict_tiles
from gistrisk.pathology.features import feature_columns
from gistrisk.pathology.model import TimmClassifier, build_model, load_backbone, load_classifier, save_classifier
from gistrisk.pathology.stain import StainConfig
from gistrisk.pathology.train import TrainConfig, train_classifier
from gistrisk.provenance import file_sha256

CPU = InferenceConfig(batch_size=8, num_workers=0, device="cpu")
FOLDER_MEAN, FOLDER_STD = [0.7, 0.6, 0.7], [0.2, 0.25, 0.18]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Any network connection fails the test: nothing may be downloaded."""
    def refuse(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def vit_file(tmp_path_factory):
    """A random-weight timm test ViT (64-d) saved as safetensors with its 1000-class head, as timm
    checkpoints come; returns (path, the timm model without head)."""
    from safetensors.torch import save_file

    torch.manual_seed(11)
    full = timm.create_model("test_vit", pretrained=False)
    p = tmp_path_factory.mktemp("vit") / "test_vit.safetensors"
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, str(p))
    ref = timm.create_model("test_vit", pretrained=False, num_classes=0)
    ref.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith("head.")})
    return p, ref.eval()


@pytest.fixture(scope="module")
def vit_folder(tmp_path_factory):
    """A timm/Hugging Face style folder (config.json with its preprocessing + model.safetensors)."""
    from timm.models import save_for_hf

    torch.manual_seed(12)
    model = timm.create_model("test_vit2", pretrained=False, num_classes=0)
    d = tmp_path_factory.mktemp("hf") / "test_vit2"
    save_for_hf(model, str(d), safe_serialization=True,
                model_config={"pretrained_cfg": {"mean": FOLDER_MEAN, "std": FOLDER_STD}})
    return d, model.eval()


def _real_batch(labelled, n=4):
    tiles, sources = labelled
    ds = TileDataset(tiles.iloc[:n], sources)
    try:
        return torch.stack([ds[i][0] for i in range(n)])
    finally:
        ds.close()


def test_default_is_the_papers_resnet50():
    spec = resolve_encoder()
    assert (spec.name, spec.feature_dim, spec.input_size, spec.weights_sha256) == (RESNET50, 2048, None, None)
    assert spec.mean == IMAGENET_MEAN and spec.std == IMAGENET_STD
    assert build_model(encoder=spec).feature_dim == 2048
    assert feature_columns(2048)[0] == "path_0000" and feature_columns(2048)[-1] == "path_2047"
    assert feature_columns(12000)[-1] == "path_11999" and len(feature_columns(64)) == 64


def test_timm_file_gives_the_models_own_embeddings(vit_file, labelled):
    path, ref = vit_file
    spec = resolve_encoder("timm:test_vit", path)
    assert spec.feature_dim == 64 and spec.input_size == 160
    assert spec.weights_sha256 == file_sha256(path) and spec.weights == str(path)
    assert spec.mean == (0.5, 0.5, 0.5)  # timm's own configuration of that model
    model = build_model(encoder=spec, seed=0)
    assert isinstance(model, TimmClassifier)
    assert load_backbone(model, path)["head_dropped"] == 2  # the checkpoint's own 1000-class head
    x = to_input(_real_batch(labelled), spec.mean, spec.std, torch.device("cpu"))  # 112-px tiles
    with torch.inference_mode():
        logits, feats = model.eval()(x)
        resized = torch.nn.functional.interpolate(x, size=(160, 160), mode="bilinear", antialias=True,
                                                  align_corners=False)
        torch.testing.assert_close(feats, ref(resized))
    assert logits.shape == (4, len(CLASSES)) and feats.shape == (4, 64)


def test_timm_folder_brings_its_preprocessing_and_architecture(vit_folder, labelled):
    folder, ref = vit_folder
    spec = resolve_encoder("timm", folder)  # the architecture named by config.json
    assert spec.name == "timm:test_vit2" and spec.mean == tuple(FOLDER_MEAN) and spec.std == tuple(FOLDER_STD)
    assert spec.weights_sha256 == file_sha256(folder / "model.safetensors")
    assert resolve_encoder("timm:test_vit2", folder).to_dict() == spec.to_dict()
    model = build_model(encoder=spec)
    load_backbone(model, spec.weights)
    model.eval()
    x = to_input(_real_batch(labelled), spec.mean, spec.std, torch.device("cpu"))
    with torch.inference_mode():
        x160 = torch.nn.functional.interpolate(x, size=(160, 160), mode="bilinear", antialias=True)
        torch.testing.assert_close(model(x)[1], ref(x160))


def test_given_preprocessing_and_image_size_win(vit_file):
    path, _ = vit_file
    spec = resolve_encoder("timm:test_vit", path, args={"img_size": 112, "dynamic_img_size": True},
                           mean=parse_rgb("0.485,0.456,0.406", "--encoder-mean"), std=(0.229, 0.224, 0.225))
    assert spec.input_size == 112 and spec.mean == IMAGENET_MEAN and spec.std == IMAGENET_STD
    with pytest.raises(InputError, match="--encoder-std '0,1,1'"):
        parse_rgb("0,1,1", "--encoder-std")
    with pytest.raises(InputError, match="--encoder-mean '0.5'"):
        parse_rgb("0.5", "--encoder-mean")
    with pytest.raises(InputError, match="go with a timm encoder"):
        resolve_encoder("resnet50", mean=(0.5, 0.5, 0.5))


def test_cls_plus_mean_pooling(vit_file, labelled):
    path, ref = vit_file
    spec = resolve_encoder("timm:test_vit", path, pool="cls+mean")
    assert spec.feature_dim == 128
    x = torch.randn(2, 3, 160, 160)
    with torch.inference_mode():
        tokens = ref.forward_features(x)
        want = torch.cat([tokens[:, 0], tokens[:, ref.num_prefix_tokens:].mean(1)], dim=1)
        model = build_model(encoder=spec)
        load_backbone(model, path)
        torch.testing.assert_close(model.eval()(x)[1], want)


def test_encoder_args_reach_timm_and_are_recorded(tmp_path):
    args = parse_encoder_args(["mlp_layer=SwiGLUPacked", "act_layer=silu", "mlp_ratio=4", "init_values=1e-5"])
    assert args == {"mlp_layer": "SwiGLUPacked", "act_layer": "silu", "mlp_ratio": 4, "init_values": 1e-5}
    spec = resolve_encoder("timm:test_vit", None, args=args)
    from timm.layers import GluMlp

    mlp = build_model(encoder=spec).encoder.blocks[0].mlp  # SwiGLUPacked: a gated MLP, packed weights
    assert isinstance(mlp, GluMlp) and isinstance(mlp.act, torch.nn.SiLU)
    assert (mlp.fc1.out_features, mlp.fc2.in_features) == (256, 128)
    assert json.loads(json.dumps(spec.to_dict()))["model_args"] == args
    with pytest.raises(InputError, match="--encoder-arg 'ratio'"):
        parse_encoder_args(["ratio"])
    with pytest.raises(InputError, match="mlp_layer.*'Nope'"):
        resolve_encoder("timm:test_vit", None, args={"mlp_layer": "Nope"})


def test_bad_encoder_inputs_are_named(vit_file, vit_folder, tmp_path):
    path, _ = vit_file
    with pytest.raises(InputError, match="--encoder 'vgg'.*resnet50.*timm:"):
        resolve_encoder("vgg")
    with pytest.raises(InputError, match="'timm:no_such_net' is not a timm model"):
        resolve_encoder("timm:no_such_net", path)
    with pytest.raises(InputError, match="not found") as e:
        resolve_encoder("timm:test_vit", tmp_path / "missing.safetensors")
    assert "missing.safetensors" in str(e.value)
    with pytest.raises(InputError, match="test_vit2.*config.json.*test_vit\\b"):
        resolve_encoder("timm:test_vit", vit_folder[0])  # folder of another architecture
    with pytest.raises(InputError, match="no config.json"):
        resolve_encoder("timm", path)  # a file does not say its architecture
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no weights") as e:
        resolve_encoder("timm:test_vit", empty)
    assert "empty" in str(e.value)
    other = build_model(encoder=resolve_encoder("timm:test_vit2", vit_folder[0]))
    with pytest.raises(InputError, match="not weights of timm model test_vit2") as e:  # another model's tensors
        load_backbone(other, path)
    assert "test_vit.safetensors" in str(e.value)


@pytest.mark.slow
def test_train_and_features_with_a_timm_encoder(vit_file, labelled, small_slide, tmp_path):
    """A frozen timm encoder + linear head: trained, reloaded, used for slide features; the encoder is
    recorded in the header, the provenance and the extraction record ``fit`` keeps."""
    from gistrisk.pathology.manifest import SlideEntry
    from gistrisk.pathology.runs import feature_cohort

    path, ref = vit_file
    tiles, sources = labelled
    spec = resolve_encoder("timm:test_vit", path)
    cfg = TrainConfig(epochs=1, batch_size=4, seed=1, device="cpu", num_workers=0, freeze_encoder=True,
                      stain=StainConfig(method="macenko"))
    res = train_classifier(tiles, tmp_path / "clf", cfg, sources=sources, tile_meta={"tile_size": 112, "mpp": 1.0},
                           encoder=spec)
    model, header = load_classifier(tmp_path / "clf")
    assert isinstance(model, TimmClassifier) and header["architecture"] == "timm"
    enc = header["encoder"]
    assert enc["name"] == "timm:test_vit" and enc["weights_sha256"] == file_sha256(path)
    assert enc["feature_dim"] == 64 and enc["input_size"] == 160 and header["mean"] == [0.5, 0.5, 0.5]
    assert header["stain"]["method"] == "macenko"
    # frozen: the encoder in the classifier file is the checkpoint's, only the head was trained
    for k, v in ref.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[k], v), k
    assert not torch.equal(model.fc.weight, build_model(encoder=spec, seed=1).fc.weight)
    p_file, f_file = predict_tiles(model, header, tiles, sources, CPU)
    p_mem, _ = predict_tiles(res.model, header, tiles, sources, CPU)
    np.testing.assert_array_equal(p_file, p_mem)
    assert f_file.shape == (len(tiles), 64)

    out = tmp_path / "feats.csv"
    run = feature_cohort(tmp_path / "clf", [SlideEntry("P1", str(small_slide), "S1")], out,
                         feature={"tumour_threshold": 0.0}, inference=CPU, progress=False, embeddings=False)
    table = pd.read_csv(out)
    assert run.n_done == 1
    assert list(table.columns[3:3 + 64]) == feature_columns(64) and "path_0064" not in table.columns
    prov = json.loads(out.with_name("feats.provenance.json").read_text())
    assert prov["parameters"]["encoder"]["name"] == "timm:test_vit"
    assert prov["parameters"]["encoder"]["weights_sha256"] == file_sha256(path)
    rec = read_extraction(out)
    assert rec["encoder"]["name"] == "timm:test_vit" and rec["encoder"]["input_size"] == 160


def test_timm_classifier_file_round_trip_and_header_checks(vit_file, tmp_path):
    path, _ = vit_file
    spec = resolve_encoder("timm:test_vit", path)
    model = build_model(encoder=spec, seed=2).eval()
    header = {"classes": list(CLASSES), "tile_size": 224, "mpp": 0.5, "mean": list(spec.mean),
              "std": list(spec.std)}
    save_classifier(tmp_path / "classifier.safetensors", model, header)
    loaded, h = load_classifier(tmp_path)
    assert h["encoder"] == spec.to_dict() and EncoderSpec.from_dict(h["encoder"]) == spec
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x)[1], model(x)[1], rtol=0, atol=0)
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(tmp_path / "classifier.safetensors"), "pt") as f:
        meta = json.loads(f.metadata()["gistrisk"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for field, value, msg in (("encoder", None, "lacks 'encoder'"),
                              ("encoder", {**meta["encoder"], "feature_dim": 0}, "feature_dim"),
                              ("encoder", {**meta["encoder"], "name": "timm:nope_net"}, "not a timm model")):
        bad = tmp_path / f"bad_{msg[:4]}.safetensors"
        save_file(tensors, str(bad), metadata={"gistrisk": json.dumps({**meta, field: value})})
        with pytest.raises(InputError, match=msg) as e:
            load_classifier(bad)
        assert bad.name in str(e.value)


def test_train_cli_with_a_timm_folder_and_bad_encoders(vit_folder, labelled, tmp_path):
    """`pathology train --encoder timm --encoder-weights FOLDER --freeze-encoder`: the folder's model,
    preprocessing and weights hash end in the classifier; a bad encoder stops before any training."""
    from typer.testing import CliRunner

    from gistrisk.atomic import write_table
    from gistrisk.pathology.cli import app

    folder, _ = vit_folder
    tiles, _ = labelled
    he = tiles[tiles.slide.str.endswith(".png")].copy()  # the real H&E image: tumour tiles
    he.loc[he.index[:2], "label"] = "stroma"
    he.attrs["gistrisk"] = {"config": {"target_mpp": 1.0}, "slide": he.slide.iloc[0], "mpp": 0.5,
                            "mpp_source": "given", "backend": "auto"}
    write_table(tmp_path / "he.tiles.parquet", he)
    args = ["train", "--tiles", str(tmp_path / "he.tiles.parquet"), "--epochs", "1", "--batch-size", "4",
            "--device", "cpu", "--workers", "0", "--stain-normalise", "none"]
    r = CliRunner().invoke(app, args + ["--out", str(tmp_path / "clf"), "--encoder", "timm", "--encoder-weights",
                                        str(folder), "--freeze-encoder"])
    assert r.exit_code == 0, r.output
    assert "encoder timm:test_vit2: 64-d embedding, input 160 px" in r.output
    _, header = load_classifier(tmp_path / "clf")
    assert header["encoder"]["weights_sha256"] == file_sha256(folder / "model.safetensors")
    assert header["mean"] == FOLDER_MEAN and header["train_config"]["freeze_encoder"] is True
    r = CliRunner().invoke(app, args + ["--out", str(tmp_path / "bad"), "--encoder", "vgg16"])
    assert isinstance(r.exception, InputError) and "--encoder 'vgg16'" in str(r.exception)
    assert not (tmp_path / "bad").exists()
