"""Multiple-choice scoring as lm-evaluation-harness (0.4.x) does it, batched with padding.

For each choice lm-eval encodes ``context + continuation`` (trailing spaces of the context
moved to the continuation), feeds the causal LM ``(context + continuation)[:-1]`` (left-
truncated to ``max_length + 1`` tokens first) and sums the log-probabilities of the
continuation tokens: the choice's log-likelihood (nats). ``acc`` is 1 when the largest
log-likelihood is the gold choice; ``acc_norm`` divides each log-likelihood by the length
of its choice string in characters first. Ties go to the first choice (as ``np.argmax``).

Here all choices of a batch of questions run in one forward pass: token ids are right-padded
(like lm-eval, no attention mask: with causal attention a real position never sees the
padding after it) into a ``(questions, choices, tokens)`` block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from scirobust.errors import ConfigError, DataError
from scirobust.llm.tasks import MCQuestion

__all__ = [
    "ChoiceBatch",
    "EncodedQuestion",
    "batches",
    "choice_scores",
    "encode_pair",
    "encode_question",
    "mc_correct",
    "model_max_length",
]

Encoder = Callable[[str, str], tuple[list[int], list[int]]]


def _encode(tokenizer, text: str, add_special_tokens: bool | None) -> list[int]:
    """lm-eval's ``tok_encode``: the tokenizer's default special tokens (e.g. a BOS) unless
    ``add_special_tokens`` says otherwise or the text already starts with the BOS string."""
    kwargs = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
    bos = getattr(tokenizer, "bos_token", None)
    if add_special_tokens is None and bos and text.startswith(bos):
        kwargs = {"add_special_tokens": False}
    return list(tokenizer.encode(text, **kwargs))


def _prefix_token_id(tokenizer) -> int:
    for name in ("bos_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    raise ConfigError("An empty context needs a BOS or EOS token as prefix; the tokenizer has "
                      "neither.")


def encode_pair(tokenizer, context: str, continuation: str, *,
                add_special_tokens: bool | None = None) -> tuple[list[int], list[int]]:
    """Token ids ``(context, continuation)`` of one request, as lm-eval's ``HFLM`` encodes it.

    The whole string is encoded and split after the context's own tokens, so the
    continuation's tokens are those it has *in context*. An empty context becomes the BOS (or
    EOS) token.
    """
    if context == "":
        cont = _encode(tokenizer, continuation, False)
        prefix = _prefix_token_id(tokenizer)
        return ([prefix], cont) if not cont or prefix != cont[0] else (cont[:1], cont[1:])
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = _encode(tokenizer, context + continuation, add_special_tokens)
    ctx = _encode(tokenizer, context, add_special_tokens)
    return ctx, whole[len(ctx):]


@dataclass(frozen=True)
class EncodedQuestion:
    """Token ids of one question: per choice the model input and the continuation tokens.

    ``inputs[i]`` is ``(context + continuation)[-(max_length + 1):][:-1]``; the last
    ``len(continuations[i])`` positions of it predict the continuation. ``choice_lengths``
    are the choice strings' lengths in characters (``acc_norm``); ``task`` and ``doc_id``
    name the question (they seed its random draws).
    """

    inputs: tuple[tuple[int, ...], ...]
    continuations: tuple[tuple[int, ...], ...]
    gold: int
    choice_lengths: tuple[float, ...]
    task: str = ""
    doc_id: int = 0

    @property
    def n_choices(self) -> int:
        """Number of choices."""
        return len(self.inputs)

    @property
    def length(self) -> int:
        """Longest model input of its choices (tokens)."""
        return max(len(i) for i in self.inputs)


def encode_question(question: MCQuestion, tokenizer=None, *, task: str = "",
                    max_length: int = 2048, add_special_tokens: bool | None = None,
                    encoder: Encoder | None = None) -> EncodedQuestion:
    """Encode every request of ``question`` (with `encode_pair`, or ``encoder(context,
    continuation)`` when given, e.g. lm-eval's own) and truncate as lm-eval does."""
    if encoder is None:
        if tokenizer is None:
            raise ConfigError("encode_question needs a tokenizer or an encoder.")

        def encoder(context: str, continuation: str) -> tuple[list[int], list[int]]:
            return encode_pair(tokenizer, context, continuation,
                               add_special_tokens=add_special_tokens)

    inputs, conts = [], []
    for context, continuation in question.requests:
        ctx, cont = encoder(context, continuation)
        if not cont:
            raise DataError(f"{task or 'task'} document {question.doc_id}: the continuation "
                            f"{continuation!r} encodes to no tokens.")
        if not ctx:
            raise DataError(f"{task or 'task'} document {question.doc_id}: the context "
                            f"{context!r} encodes to no tokens.")
        if len(cont) > max_length:
            raise DataError(f"{task or 'task'} document {question.doc_id}: the continuation "
                            f"has {len(cont)} tokens, more than the model's {max_length}.")
        inputs.append(tuple((list(ctx) + list(cont))[-(max_length + 1):][:-1]))
        conts.append(tuple(cont))
    return EncodedQuestion(tuple(inputs), tuple(conts), question.gold,
                           tuple(float(len(c)) for c in question.choices), task,
                           question.doc_id)


@dataclass(frozen=True)
class ChoiceBatch:
    """Questions with the same number of choices as right-padded tensors.

    ``input_ids`` ``(B, C, T)`` (padding: ``pad_id``); ``targets`` ``(B, C, T)``: the
    continuation token each counted position predicts (0 elsewhere); ``counted`` ``(B, C, T)``
    bool: positions whose prediction is a continuation token; ``valid`` ``(B, C, T)`` bool:
    real (non-padding) positions; ``gold`` ``(B,)``; ``choice_lengths`` ``(B, C)`` characters;
    ``lengths`` ``(B,)``: each question's longest input (tokens).
    """

    input_ids: Tensor
    targets: Tensor
    counted: Tensor
    valid: Tensor
    gold: Tensor
    choice_lengths: Tensor
    lengths: Tensor
    questions: tuple[EncodedQuestion, ...]

    @classmethod
    def collate(cls, questions: Sequence[EncodedQuestion], *, pad_id: int = 0,
                device: str | torch.device | None = None) -> ChoiceBatch:
        """Pad ``questions`` (all with the same number of choices) into one batch."""
        if not questions:
            raise DataError("An empty batch of questions.")
        n_choices = {q.n_choices for q in questions}
        if len(n_choices) != 1:
            raise DataError(f"A batch mixes questions with {sorted(n_choices)} choices; group "
                            "them by number of choices (scoring.batches does).")
        b, c, t = len(questions), n_choices.pop(), max(q.length for q in questions)
        ids = torch.full((b, c, t), pad_id, dtype=torch.long)
        targets = torch.zeros((b, c, t), dtype=torch.long)
        counted = torch.zeros((b, c, t), dtype=torch.bool)
        valid = torch.zeros((b, c, t), dtype=torch.bool)
        for i, q in enumerate(questions):
            for j, (inp, cont) in enumerate(zip(q.inputs, q.continuations, strict=True)):
                n, k = len(inp), len(cont)
                ids[i, j, :n] = torch.tensor(inp)
                valid[i, j, :n] = True
                targets[i, j, n - k:n] = torch.tensor(cont)
                counted[i, j, n - k:n] = True
        gold = torch.tensor([q.gold for q in questions])
        lengths = torch.tensor([q.choice_lengths for q in questions], dtype=torch.float64)
        return cls(ids.to(device), targets.to(device), counted.to(device), valid.to(device),
                   gold.to(device), lengths, torch.tensor([q.length for q in questions]),
                   tuple(questions))


def batches(questions: Sequence[EncodedQuestion], max_rows: int) -> Iterator[list[int]]:
    """Indices of ``questions`` in batches of at most ``max_rows`` choice rows (at least one
    question), each batch with one number of choices, longest questions first."""
    if max_rows < 1:
        raise ConfigError(f"batch_size (choice rows per forward pass) must be >= 1; got "
                          f"{max_rows}.")
    order = sorted(range(len(questions)),
                   key=lambda i: (questions[i].n_choices, -questions[i].length, i))
    batch: list[int] = []
    for i in order:
        if batch and (questions[batch[0]].n_choices != questions[i].n_choices
                      or (len(batch) + 1) * questions[i].n_choices > max_rows):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def choice_scores(logits: Tensor, batch: ChoiceBatch) -> tuple[Tensor, Tensor]:
    """Per choice: summed log-probability of the continuation tokens (nats, float32 or more)
    and whether every continuation token is the greedy one; both ``(B, C)``.

    ``logits``: ``(B, C, T, vocab)``, or ``(B*C, T, vocab)``. The log-softmax is taken in
    float32 at least (lm-eval's default takes it in the model's dtype; identical for float32
    models).
    """
    b, c, t = batch.input_ids.shape
    logits = logits.reshape(b, c, t, -1)
    if not logits.is_floating_point() or logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    picked = logp.gather(-1, batch.targets.unsqueeze(-1)).squeeze(-1)
    lls = (picked * batch.counted).sum(-1)
    greedy = ((logits.argmax(-1) == batch.targets) | ~batch.counted).all(-1)
    return lls, greedy


def mc_correct(lls: Tensor, gold: Tensor, choice_lengths: Tensor) -> tuple[Tensor, Tensor]:
    """``acc`` and ``acc_norm`` (1.0 or 0.0 per question, float64): is the gold choice the
    argmax of the log-likelihoods, and of the log-likelihoods per character?"""
    lls = lls.detach().double().cpu()
    gold = gold.cpu()
    acc = (lls.argmax(-1) == gold).double()
    acc_norm = ((lls / choice_lengths.double()).argmax(-1) == gold).double()
    return acc, acc_norm


def model_max_length(lm, tokenizer=None, default: int = 2048) -> int:
    """Longest input the model takes (tokens), found as lm-eval does: the (text) config's
    ``n_positions``, ``max_position_embeddings`` or ``n_ctx``, else the tokenizer's
    ``model_max_length`` when set, else ``default``."""
    config = getattr(lm, "config", None)
    for cfg in (getattr(config, "text_config", None), config):
        for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and value > 0:
                return value
    value = getattr(tokenizer, "model_max_length", None)
    if isinstance(value, int) and 0 < value < 10**9:
        return value
    return default
