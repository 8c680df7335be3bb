"""Perturb the output of a causal LM's input-embedding layer: random, FGSM or BIM noise.

The attacked quantity is the tensor the embedding layer (``lm.get_input_embeddings()``)
returns — one vector per token, in embedding units — exactly what paper 001 §2.2 perturbs in
TinyLlama. A forward hook on that layer replaces its output for one forward pass
(`replaced_embedding_output`); nothing else in the model changes.

`ChoiceLogLikelihood` is the attacked "model": it maps the embedding outputs of a batch of
multiple-choice questions ``(questions, choices, tokens, dim)`` to the choices'
log-likelihoods ``(questions, choices)``. The attack objective is the cross-entropy of those
log-likelihoods (as logits over the choices) against the gold answer, so FGSM and BIM are the
project's one attack loop (`scirobust.attacks.attack`) inside a `Budget` (default: 0.01 in
L-inf, absolute embedding units). Random controls draw ±amplitude on every element (the
same L-inf and L2 size as FGSM), one generator per question, so a question's noise does not
depend on the batch it runs in. Padding positions never move.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from scirobust import objectives
from scirobust.attacks import attack, get_spec
from scirobust.budget import Budget, RandomKind
from scirobust.errors import ConfigError
from scirobust.llm.scoring import ChoiceBatch, choice_scores

__all__ = [
    "ChoiceLogLikelihood",
    "embedding_budget",
    "embedding_layer",
    "embedding_noise",
    "embedding_scale",
    "perturb_embeddings",
    "replaced_embedding_output",
]


def embedding_layer(lm: nn.Module, layer_name: str | None = None) -> nn.Module:
    """The input-embedding layer of ``lm``: ``lm.get_input_embeddings()`` (any Hugging Face
    model), or the submodule ``layer_name`` when given."""
    if layer_name:
        from scirobust.layers import get_layer

        return get_layer(lm, layer_name)
    getter = getattr(lm, "get_input_embeddings", None)
    layer = getter() if callable(getter) else None
    if not isinstance(layer, nn.Module):
        raise ConfigError(f"{type(lm).__name__} has no get_input_embeddings(); name the "
                          "embedding layer (layer_name='model.embed_tokens').")
    return layer


def embedding_scale(lm: nn.Module, layer_name: str | None = None) -> float:
    """Standard deviation of the embedding table's entries (embedding units): the unit of a
    relative amplitude."""
    weight = getattr(embedding_layer(lm, layer_name), "weight", None)
    if not isinstance(weight, Tensor):
        raise ConfigError("The embedding layer has no weight table; give an absolute amplitude.")
    return float(weight.detach().double().std())


def embedding_budget(amplitude: float = 0.01, *, relative: bool = False,
                     lm: nn.Module | None = None, norm: str = "linf") -> Budget:
    """The perturbation budget of the embedding outputs: ``amplitude`` in embedding units
    (L-inf by default: every element moves at most that much), or with ``relative=True`` in
    units of `embedding_scale` of ``lm``."""
    if not isinstance(amplitude, int | float) or isinstance(amplitude, bool) or amplitude < 0:
        raise ConfigError(f"amplitude must be a number >= 0; got {amplitude!r}.")
    if not relative:
        return Budget(eps=float(amplitude), norm=norm)  # type: ignore[arg-type]
    if lm is None:
        raise ConfigError("A relative amplitude needs the model (its embedding scale).")
    return Budget(eps=float(amplitude), norm=norm, scale=embedding_scale(lm))  # type: ignore[arg-type]


@contextlib.contextmanager
def replaced_embedding_output(lm: nn.Module, features: Tensor,
                              layer_name: str | None = None) -> Iterator[None]:
    """Inside the block the embedding layer of ``lm`` returns ``features`` instead of its own
    output (same shape; dtype cast to the layer's). Refuses a forward pass in which the layer
    runs other than once; the hook is removed on leaving the block."""
    layer = embedding_layer(lm, layer_name)
    calls: list[bool] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> Tensor:
        if not isinstance(output, Tensor) or output.shape != features.shape:
            shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            raise ConfigError(f"Embedding features of shape {tuple(features.shape)} given for a "
                              f"layer whose output is {shape}.")
        calls.append(True)
        return features.to(output.dtype)

    handle = layer.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
    if len(calls) != 1:
        raise ConfigError(f"The embedding layer ran {len(calls)} times in one forward pass; the "
                          "attack needs a model that embeds its input once.")


@contextlib.contextmanager
def embedding_noise(lm: nn.Module, budget: Budget, *, kind: RandomKind = "sign",
                    generator: torch.Generator | None = None,
                    layer_name: str | None = None) -> Iterator[None]:
    """Inside the block every forward pass of ``lm`` adds random noise of the size of
    ``budget`` to the embedding layer's output (``kind``: ``sign`` ±eps, ``gaussian``,
    ``uniform``; see `Budget.random_delta`) — e.g. to generate text under noise."""
    layer = embedding_layer(lm, layer_name)

    def hook(_module: nn.Module, _inputs: Any, output: Tensor) -> Tensor:
        return output + budget.random_delta(output.detach(), kind, generator)

    handle = layer.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _logits(output: Any) -> Tensor:
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, tuple | list):
        logits = output[0]
    if logits is None and isinstance(output, Tensor):
        logits = output
    if not isinstance(logits, Tensor):
        raise ConfigError(f"The language model returned {type(output).__name__} without "
                          "logits; give a causal LM (AutoModelForCausalLM).")
    return logits


class ChoiceLogLikelihood(nn.Module):
    """Log-likelihood of every choice of a `ChoiceBatch` as a function of the embedding
    layer's output.

    ``forward(embeddings)`` takes ``(B, C, T, dim)`` embedding outputs (embedding units) and
    returns ``(B, C)`` summed continuation log-probabilities (nats), running ``lm`` on the
    batch's token ids with the embedding layer's output replaced. `embeddings` gives the clean
    ones. The LM's parameters are shared, never changed.
    """

    def __init__(self, lm: nn.Module, batch: ChoiceBatch, *,
                 layer_name: str | None = None) -> None:
        super().__init__()
        self.lm = lm
        self.batch = batch
        self.layer_name = layer_name

    def embeddings(self) -> Tensor:
        """The clean embedding outputs of the batch, ``(B, C, T, dim)``, detached."""
        b, c, t = self.batch.input_ids.shape
        with torch.no_grad():
            out = embedding_layer(self.lm, self.layer_name)(self.batch.input_ids.reshape(b * c, t))
        return out.reshape(b, c, t, -1).detach()

    def logits(self, embeddings: Tensor) -> Tensor:
        """Next-token logits ``(B*C, T, vocab)`` with the embedding output ``embeddings``."""
        b, c, t = self.batch.input_ids.shape
        flat = embeddings.reshape(b * c, t, -1)
        with replaced_embedding_output(self.lm, flat, self.layer_name):
            output = self.lm(input_ids=self.batch.input_ids.reshape(b * c, t), use_cache=False)
        return _logits(output)

    def forward(self, embeddings: Tensor) -> Tensor:
        """``(B, C)`` choice log-likelihoods (nats) for embedding outputs ``(B, C, T, dim)``."""
        return choice_scores(self.logits(embeddings), self.batch)[0]

    def scores(self, embeddings: Tensor) -> tuple[Tensor, Tensor]:
        """Log-likelihoods and greedy flags ``(B, C)`` without gradient, in eval mode."""
        modes = [(m, m.training) for m in self.modules()]
        try:
            self.eval()
            with torch.no_grad():
                return choice_scores(self.logits(embeddings), self.batch)
        finally:
            for module, training in modes:
                module.training = training


def perturb_embeddings(
    scorer: ChoiceLogLikelihood,
    embeddings: Tensor,
    budget: Budget,
    method: str,
    *,
    generators: Sequence[torch.Generator] | None = None,
    generator: torch.Generator | None = None,
    steps: int | None = None,
    step_size: float | None = None,
    random_start: bool | None = None,
) -> Tensor:
    """Perturbed embedding outputs ``(B, C, T, dim)`` of ``scorer``'s batch.

    ``method`` is a random control (``random_sign``, ...: each question draws from its own
    ``generators[i]`` over its own length, so padding does not change its noise) or an
    untargeted gradient attack (``fgsm``, ``bim``, ``pgd_linf``, ...) that ascends the
    cross-entropy of the choice log-likelihoods against the gold answers with
    `scirobust.attacks.attack` (``steps``, ``step_size`` as fraction of eps, ``random_start``
    and ``generator`` as there). Padding positions are returned unchanged.
    """
    spec = get_spec(method)
    batch = scorer.batch
    valid = batch.valid.unsqueeze(-1)
    if spec.is_random:
        if generators is not None and len(generators) != len(batch.questions):
            raise ConfigError(f"{len(generators)} generators for {len(batch.questions)} "
                              "questions; give one per question.")
        out = embeddings.detach().clone()
        for i, question in enumerate(batch.questions):
            n = question.length
            gen = generators[i] if generators is not None else generator
            out[i:i + 1, :, :n] = attack(scorer, embeddings[i:i + 1, :, :n].detach(), None,
                                         budget, method, generator=gen)
        return torch.where(valid, out, embeddings.detach())
    if spec.targeted or spec.kind != "gradient":
        raise ConfigError(f"{method} is not an untargeted gradient attack; on language models "
                          "use random_sign, random_gaussian, random_uniform, fgsm, bim, "
                          "pgd_linf, fgm or pgd_l2.")
    adv = attack(scorer, embeddings.detach(), objectives.cross_entropy(batch.gold), budget,
                 method, steps=steps, step_size=step_size, random_start=random_start,
                 generator=generator)
    return torch.where(valid, adv, embeddings.detach())
