"""HProbe and CETT on hand-made arrays, without a model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hnggml import HProbe, ProbeFormatError
from hnggml.features import aggregate, cett, logit_signals
from hnggml.probe import Combiner

MODEL = {"architecture": "gemma3", "n_layer": 4, "n_ff": 8, "n_embd": 6, "name": "toy",
         "ffn_down_sha256": "ab" * 32}


def make_probe(**overrides) -> HProbe:
    fields = dict(model=dict(MODEL), neurons_=[[0, 1], [2, 7], [3, 0]], coef_=[1.0, -2.0, 0.5],
                  intercept_=-0.25, w_norm_=[2.0, 1.0, 4.0])
    fields.update(overrides)
    return HProbe(**fields)


def test_cett_hand_values():
    z = np.array([[1.0, -2.0], [0.5, 0.0]])
    h_norm = np.array([2.0, 4.0])
    w_norm = np.array([3.0, 0.5])
    expected = np.array([[1.0 * 3.0 / 2.0, 2.0 * 0.5 / 2.0], [0.5 * 3.0 / 4.0, 0.0]])
    np.testing.assert_allclose(cett(z, h_norm, w_norm), expected, rtol=1e-6)


def test_cett_zero_output_finite():
    assert np.isfinite(cett(np.ones((1, 2)), np.zeros(1), np.ones(2))).all()


def test_aggregate_mean_and_max():
    rows = np.array([[1.0, 4.0], [3.0, 0.0]])
    np.testing.assert_allclose(aggregate(rows, "mean"), [2.0, 2.0])
    np.testing.assert_allclose(aggregate(rows, "max"), [3.0, 4.0])
    with pytest.raises(ValueError, match="'median'"):
        aggregate(rows, "median")


def test_logit_signals_values():
    out = logit_signals(np.array([1.0, 3.0]), np.log(np.array([0.5, 0.25])))
    assert out["entropy"] == pytest.approx(2.0)
    assert out["neg_logprob"] == pytest.approx(-(np.log(0.5) + np.log(0.25)) / 2)
    assert out["one_minus_min_prob"] == pytest.approx(0.75)
    assert out["n_tokens"] == 2


def test_probe_decision_function_by_hand():
    probe = make_probe()
    x = np.array([[0.2, 0.1, 0.4]])
    expected = 0.2 * 1.0 + 0.1 * -2.0 + 0.4 * 0.5 - 0.25
    assert probe.decision_function(x)[0] == pytest.approx(expected)
    assert probe.predict_proba(x)[0, 1] == pytest.approx(1 / (1 + np.exp(-expected)))


def test_probe_combiner_by_hand():
    combiner = Combiner(inputs=["h_logit", "entropy"], mean=np.array([0.0, 1.0]),
                        scale=np.array([2.0, 0.5]), coef=np.array([1.0, 3.0]), intercept=0.1)
    probe = make_probe(combiner=combiner)
    x = np.array([[0.0, 0.0, 0.0]])
    logit = ((-0.25 - 0.0) / 2.0) * 1.0 + ((2.0 - 1.0) / 0.5) * 3.0 + 0.1
    assert probe.decision_function(x, {"entropy": np.array([2.0])})[0] == pytest.approx(logit)
    with pytest.raises(ValueError, match="entropy"):
        probe.decision_function(x)


def test_probe_layer_neurons_groups():
    groups = make_probe().layer_neurons()
    assert sorted(groups) == [0, 2, 3]
    np.testing.assert_array_equal(groups[2][0], [7])
    np.testing.assert_array_equal(groups[2][1], [1])


def test_probe_save_load_roundtrip(tmp_path):
    probe = make_probe(threshold=0.3)
    loaded = HProbe.load(probe.save(tmp_path / "p.json"))
    np.testing.assert_array_equal(loaded.neurons_, probe.neurons_)
    assert loaded.threshold == 0.3
    assert loaded.model == probe.model


@pytest.mark.parametrize("change, message", [
    ({"neurons_": [[4, 0], [2, 7], [3, 0]]}, "layer 4 outside"),
    ({"neurons_": [[0, 8], [2, 7], [3, 0]]}, "neuron index"),
    ({"coef_": [1.0, float("nan"), 0.5]}, "finite"),
    ({"coef_": [1.0, 2.0]}, "coefficients"),
    ({"neurons_": [[0, 1], [0, 1], [3, 0]]}, "more than once"),
    ({"threshold": 1.5}, "threshold"),
    ({"w_norm_": [1.0, -1.0, 1.0]}, "column norms"),
])
def test_probe_invalid_fields_rejected(change, message):
    with pytest.raises(ProbeFormatError, match=message):
        make_probe(**change)


def test_probe_file_with_nan_literal_rejected(tmp_path):
    data = make_probe().to_dict()
    text = json.dumps(data).replace('"intercept": -0.25', '"intercept": NaN')
    path = tmp_path / "nan.json"
    path.write_text(text)
    with pytest.raises(ProbeFormatError, match="NaN"):
        HProbe.load(path)


def test_probe_wrong_format_rejected(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ProbeFormatError, match="not an hnggml probe"):
        HProbe.load(path)
