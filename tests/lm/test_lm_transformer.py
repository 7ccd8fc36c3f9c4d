"""The Transformer language model: the LSTM's interface, causality, tied embeddings, its context bound,
its configuration and where it lives (devices)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from rlimm.lm.config import parse_config
from rlimm.lm.experiment import fit_teacher, load_corpus
from rlimm.lm.model import detach_hidden
from rlimm.lm.train import Trainer, build_model
from rlimm.lm.transformer import TransformerLanguageModel

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "lm_tiny.yaml"
V, WIDTH, CONTEXT = 7, 8, 6


def _model(**kw):
    torch.manual_seed(0)
    args = {
        "vocab_size": V,
        "hidden": WIDTH,
        "layers": 2,
        "heads": 2,
        "context": CONTEXT,
        "dropout": 0.0,
        "init_scale": 1.0,  # large, so that outputs differ visibly between inputs
    } | kw
    return TransformerLanguageModel(**args)


def test_forward_has_the_lstm_interface_time_major_and_no_state():
    model = _model().eval()
    tokens = torch.randint(0, V, (6, 3))  # (T, B)
    logits, state = model(tokens)
    assert logits.shape == (6, 3, V) and state == () and model.init_hidden(3) == ()
    # A state passed in (the training loop's carried one) is accepted and ignored.
    again, _ = model(tokens, detach_hidden(model.init_hidden(3)))
    torch.testing.assert_close(again, logits)
    last, _ = model(tokens, last_only=True)
    torch.testing.assert_close(last, logits[-1])
    # Column b of the output depends on column b of the input only.
    alone, _ = model(tokens[:, 1:2])
    torch.testing.assert_close(alone[:, 0], logits[:, 1])
    with pytest.raises(ValueError, match=r"\(T, B\)"):
        model(tokens.flatten())


def test_the_model_is_causal():
    # Changing the word at position t changes no prediction before t, and changes the one at t.
    model = _model().eval()
    tokens = torch.randint(0, V, (CONTEXT, 4), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        base, _ = model(tokens)
        for t in range(CONTEXT):
            changed = tokens.clone()
            changed[t] = (changed[t] + 1) % V
            out, _ = model(changed)
            assert torch.equal(out[:t], base[:t]), t
            assert (out[t] - base[t]).abs().max() > 1e-3, t
    # The same holds with gradients on (the training path, not the inference fast path): the gradient of
    # the first position's logits with respect to the embeddings of later words is zero.
    emb = model.embedding.weight
    later = tokens[1:].unique()
    earlier = tokens[:1].unique()
    only_later = later[~torch.isin(later, earlier)]
    logits, _ = model(tokens)
    (grad,) = torch.autograd.grad(logits[0].sum(), emb)
    assert only_later.numel() > 0
    # Tied weights are off here: the decoder does not read the embedding, only the input does.
    assert torch.all(grad[only_later] == 0) and grad[earlier].abs().sum() > 0


def test_tied_embeddings_are_one_parameter_and_stay_tied_when_moved():
    tied = _model(tie_weights=True)
    assert tied.decoder.weight is tied.embedding.weight
    names = [name for name, _ in tied.named_parameters()]
    assert "embedding.weight" in names and "decoder.weight" not in names  # listed (and updated) once
    n_tied = sum(p.numel() for p in tied.parameters())
    assert n_tied == sum(p.numel() for p in _model().parameters()) - V * WIDTH
    # A gradient step through the decoder moves the embedding it shares.
    logits, _ = tied(torch.tensor([[1], [2]]))
    logits[-1, 0, 3].backward()
    assert tied.embedding.weight.grad[3].abs().sum() > 0
    # Moving to another dtype or device keeps one parameter (torch alone would untie the copies when it
    # cannot convert in place, e.g. to the meta device).
    for target in (torch.float64, "meta"):
        moved = tied.to(target)
        assert moved.decoder.weight is moved.embedding.weight, target
        assert sum(p.numel() for p in moved.parameters()) == n_tied


def test_the_model_moves_with_to_device():
    # No GPU here: the meta device stands in for "another device" (every parameter and buffer follows, and
    # so does the output of a forward pass); the trainer moves the model the same way for --device cuda.
    model = _model(tie_weights=True).to(torch.device("meta"))
    assert {p.device.type for p in model.parameters()} == {"meta"}
    assert {b.device.type for b in model.buffers()} <= {"meta"}
    logits, _ = model(torch.zeros(5, 2, dtype=torch.int64, device="meta"))
    assert logits.device.type == "meta" and logits.shape == (5, 2, V)
    cpu = _model().to(torch.device("cpu"))
    assert {p.device.type for p in cpu.parameters()} == {"cpu"}


def test_inputs_longer_than_the_context_are_refused():
    model = _model()
    model(torch.zeros(CONTEXT, 1, dtype=torch.int64))
    with pytest.raises(ValueError, match=f"7 positions exceed the model's context of {CONTEXT}"):
        model(torch.zeros(CONTEXT + 1, 1, dtype=torch.int64))


def test_constructor_checks_and_initialisation():
    with pytest.raises(ValueError, match=r"heads \(3\) must divide hidden \(8\)"):
        _model(heads=3)
    with pytest.raises(ValueError, match="must be positive"):
        _model(context=0)
    with pytest.raises(ValueError, match="dropout"):
        _model(dropout=1.0)
    model = _model(init_scale=0.1)
    for emb in (model.embedding, model.position):
        assert emb.weight.abs().max() <= 0.1
    assert model.decoder.weight.abs().max() <= 0.1 and not model.decoder.bias.any()


def test_dropout_acts_in_train_mode_only():
    model = _model(dropout=0.5)
    tokens = torch.randint(0, V, (4, 2))
    model.train()
    a, _ = model(tokens)
    b, _ = model(tokens)
    assert not torch.equal(a, b)
    model.eval()
    with torch.no_grad():
        c, _ = model(tokens)
        d, _ = model(tokens)
    assert torch.equal(c, d)


def _tiny(**changes):
    data = yaml.safe_load(TINY.read_text())
    data["model"].update({"kind": "transformer", "heads": 4})
    data["train"].update({"max_batches_per_epoch": 4, "epochs": 1})
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        data[section][key] = value
    return parse_config(data)


def test_the_config_builds_a_transformer_whose_context_defaults_to_bptt():
    config = _tiny()
    model = build_model(config, 12)
    assert isinstance(model, TransformerLanguageModel)
    assert model.context == config.train.bptt == 10 and len(model.encoder.layers) == 2
    assert build_model(_tiny(**{"model.context": 24}), 12).context == 24


def test_a_trainer_puts_the_transformer_on_its_device_and_carries_no_state():
    config = _tiny()
    corpus = load_corpus(config)
    kn = fit_teacher(corpus)
    trainer = Trainer(config, "imm", corpus.train, corpus.valid, kn, corpus.vocab.eos_id, device="cpu")
    assert isinstance(trainer.model, TransformerLanguageModel)
    trainer.run(max_batches=2)
    assert trainer.progress.hidden == () and trainer.progress.kl_batches == 2
    assert {p.device for p in trainer.model.parameters()} == {trainer.device}
