"""The shipped digit classifier (the feature network of configs/digits2d.yaml) and the ``classes`` metric."""

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from sklearn import datasets as sklearn_datasets

from ndgan.data import open_dataset
from ndgan.metrics import MetricSettings
from ndgan.metrics.digits import DigitClassifier, split
from ndgan.metrics.evaluate import Evaluator
from ndgan.metrics.features import load_features

from .test_evaluate import DataSampler

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "pretrained" / "digits-classifier.safetensors"


@pytest.fixture(scope="module")
def digits():
    return open_dataset("digits", size=32, shape=(32, 32), channels=1)


@pytest.fixture(scope="module")
def classifier():
    return load_features(str(SHIPPED), 1, 2)


def test_shipped_classifier_recognises_held_out_scans(digits, classifier):
    labels = torch.as_tensor(sklearn_datasets.load_digits().target)
    # The held-out fifth, derived here from the seed as the training script does: a seeded permutation's tail.
    order = torch.randperm(1797, generator=torch.Generator().manual_seed(0))
    held_out = order[1797 - 359:]
    assert torch.equal(split(1797, 0.2, 0)[1], held_out)
    x = torch.stack([digits[int(i)] for i in held_out])
    with torch.no_grad():
        predicted = classifier.classify(classifier(x)).argmax(1)
    accuracy = float((predicted == labels[held_out]).float().mean())
    assert accuracy > 0.95
    with safe_open(str(SHIPPED), framework="pt") as f:
        assert abs(float(f.metadata()["heldout_accuracy"]) - accuracy) < 1e-3  # the file says what it does
    assert isinstance(classifier, DigitClassifier) and classifier.num_features == 128


def test_classifier_rebuilds_from_its_state_dict_and_refuses_other_data(classifier, tmp_path):
    rebuilt = DigitClassifier.from_state_dict(classifier.state_dict(), "here")
    x = torch.randn(3, 1, 32, 32).clamp(-1, 1)
    assert torch.equal(rebuilt(x), classifier(x))
    with pytest.raises(ValueError, match="1-channel data with 2 axes"):
        load_features(str(SHIPPED), 3, 2)
    with pytest.raises(ValueError, match="not a digit classifier"):
        DigitClassifier.from_state_dict({"logits.weight": torch.zeros(10, 128), "features.weight": torch.zeros(1),
                                         "convs.0.weight": torch.zeros(1)}, "bad.safetensors")


def _predicted(classifier, samples):
    with torch.no_grad():
        return classifier.classify(classifier(samples)).argmax(1)


def test_classes_metric_against_counts_by_hand(digits, classifier):
    settings = MetricSettings(num_gen=400, num_real=400, batch=40, features=str(SHIPPED))
    ev = Evaluator(["classes", "fid"], digits, settings)
    faithful, info = ev.evaluate(DataSampler(digits))
    assert info["classes"]["classes"] == 10
    assert faithful["classes_covered"] == 10 and faithful["classes_covered_baseline"] == 10
    assert faithful["classes_tv"] < 0.15 and faithful["fid"] < 3 * faithful["fid_baseline"]
    assert faithful["classes_confidence_real"] > 0.9

    ones = [i for i in range(len(digits)) if int(sklearn_datasets.load_digits().target[i]) == 1]
    only_ones = torch.utils.data.Subset(digits, ones)
    collapsed, _ = ev.evaluate(DataSampler(only_ones))
    # By hand: the reals' predicted-class histogram (the evaluator's seeded draw of 400) against one spike.
    order = torch.randperm(len(digits), generator=torch.Generator().manual_seed(settings.seed))[:400]
    real_pred = _predicted(classifier, torch.stack([digits[int(i)] for i in order]))
    hist_real = torch.bincount(real_pred, minlength=10).double() / 400
    fake_pred = _predicted(classifier, torch.stack([only_ones[i] for i in range(len(only_ones))]))
    hist_fake = torch.bincount(fake_pred, minlength=10).double() / len(fake_pred)
    # The stand-in draws the ones with repeats, so its class histogram only estimates that of all the ones:
    # the metric must agree with the TV computed here from all of them to within that sampling noise.
    tv_all_ones = float((hist_fake - hist_real).abs().sum() / 2)
    assert collapsed["classes_tv"] == pytest.approx(tv_all_ones, abs=0.03)
    assert collapsed["classes_tv"] > 0.8 and collapsed["classes_covered"] <= 2
    assert collapsed["fid"] > 10 * faithful["fid"]


def test_classes_needs_a_classifier(digits):
    from .test_evaluate import RandomConvFeatures

    with pytest.raises(ValueError, match="classes: needs a classifier"):
        Evaluator(["classes"], digits, MetricSettings(num_gen=8), features=RandomConvFeatures(1))


def test_training_with_a_feature_network_trains_the_weights_of_training_without(tmp_path):
    """Building the classifier (its layers draw initial weights) must not shift the training's random stream."""
    from ndgan.train import load_config, train

    small = ["G.z_dim=16", "G.w_dim=16", "G.channel_base=64", "G.channel_max=8", "D.channel_base=64",
             "D.channel_max=8", "train.kimg=0.064", "train.snapshot_kimg=0.064", "metrics.num_gen=16"]
    config = str(ROOT / "configs" / "digits2d.yaml")
    with_metrics = train(load_config(config, small + ["train.metrics_kimg=0.032",
                                                      f"metrics.features={SHIPPED}"]), tmp_path / "a")
    plain = train(load_config(config, small + ["train.metrics=[]"]), tmp_path / "b")
    assert len((with_metrics / "metrics.jsonl").read_text().splitlines()) == 2
    a = torch.load(with_metrics / "checkpoint-000000064.pt", weights_only=True)
    b = torch.load(plain / "checkpoint-000000064.pt", weights_only=True)
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    for name, tensor in a["G"].items():
        assert torch.equal(tensor, b["G"][name]), name
