"""A laptop-scale stand-in for TinyLlama on six benchmarks: a tiny Llama that learned a
synthetic world of facts, asked in the six benchmarks' own document formats.

The world: ``n`` animals, each with a colour, a home and a food (drawn with a seed). Six
synthetic benchmarks ask about them in the field layout and prompt style of the real ones
(so they go through the same readers and scoring as real files):

==============  =====================================================  =========
task            question (answer)                                      choices
==============  =====================================================  =========
arc_easy        ``Question: What color is the fox?`` (colour)          4
arc_challenge   ``Question: What does the fox eat?`` (food; labels     4
                ``1``-``4``)
hellaswag       ``Going home: The fox is tired. It walks back to the``   4
                (home)
openbookqa      ``The fox has a body that is`` (colour)                4
piqa            ``Question: Feed the fox.`` (``Give it fish.``)        2
winogrande      ``The fox and the owl went out, but only _ went to     2
                the forest.``
==============  =====================================================  =========

The training split renders every fact in every format (with its own random distractors) as
plain text, context + right answer; the test split asks the same facts with fresh
distractors, choice order and Winogrande pairs. Clean accuracy therefore measures recall of
facts seen in training, not generalisation — the stand-in for a pretrained model that knows
the answers. The tokenizer is word-level (lower-cased words and punctuation, a ``<s>``
prefix like Llama's), built from the documents; the model is a 2-layer Llama built from a
config; nothing is downloaded.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from scirobust.errors import ConfigError
from scirobust.llm.tasks import TASK_FORMATS, doc_to_question, write_jsonl

__all__ = [
    "ANIMALS",
    "World",
    "build_word_tokenizer",
    "make_split",
    "tiny_llama",
    "train_causal_lm",
    "training_texts",
    "write_splits",
]

ANIMALS = (
    "fox", "owl", "frog", "bee", "crab", "goat", "hen", "seal", "wolf", "deer", "duck", "mole",
    "bat", "cow", "pig", "yak", "eel", "ant", "elk", "emu", "gnu", "cat", "dog", "rat", "toad",
    "lion", "bear", "hare", "lamb", "mouse", "moth", "newt", "otter", "panda", "quail", "raven",
    "shark", "sloth", "snail", "stork", "swan", "tiger", "trout", "viper", "whale", "wren",
    "zebra", "koala", "llama", "lynx", "mink", "mule", "ox", "pony", "puma", "robin", "skunk",
    "squid", "tapir", "finch", "gecko", "heron", "ibis", "jay",
)
COLOURS = ("red", "green", "blue", "yellow", "black", "white", "pink", "brown")
HOMES = ("forest", "river", "desert", "cave", "farm", "hill", "lake", "field")
FOODS = ("seeds", "fish", "grass", "fruit", "bugs", "leaves", "nuts", "worms")
TASKS = ("arc_easy", "arc_challenge", "hellaswag", "openbookqa", "piqa", "winogrande")


@dataclass(frozen=True)
class World:
    """Facts: every animal's colour, home and food."""

    animals: tuple[str, ...]
    colour: dict[str, str]
    home: dict[str, str]
    food: dict[str, str]

    @classmethod
    def generate(cls, n_animals: int, seed: int = 0) -> World:
        """``n_animals`` animals (at most `ANIMALS`) with facts drawn uniformly (seeded)."""
        if not 2 <= n_animals <= len(ANIMALS):
            raise ConfigError(f"n_animals must be in 2..{len(ANIMALS)}; got {n_animals}.")
        rng = random.Random(seed)
        animals = tuple(ANIMALS[:n_animals])
        return cls(animals, {a: rng.choice(COLOURS) for a in animals},
                   {a: rng.choice(HOMES) for a in animals}, {a: rng.choice(FOODS) for a in animals})


def _options(rng: random.Random, right: str, pool: Sequence[str], k: int) -> tuple[list[str], int]:
    """``k`` options: ``right`` and ``k-1`` other values of ``pool``, shuffled; gold index."""
    options = [right, *rng.sample([p for p in pool if p != right], k - 1)]
    rng.shuffle(options)
    return options, options.index(right)


def _doc(task: str, world: World, animal: str, rng: random.Random, i: int) -> dict[str, Any]:
    """One document of ``task`` about ``animal`` in the real benchmark's field layout."""
    if task == "arc_easy":
        options, gold = _options(rng, world.colour[animal], COLOURS, 4)
        labels = ["A", "B", "C", "D"]
        return {"id": f"easy-{i}", "question": f"What color is the {animal}?",
                "choices": {"text": options, "label": labels}, "answerKey": labels[gold]}
    if task == "arc_challenge":
        options, gold = _options(rng, world.food[animal], FOODS, 4)
        labels = ["1", "2", "3", "4"]
        return {"id": f"challenge-{i}", "question": f"What does the {animal} eat?",
                "choices": {"text": options, "label": labels}, "answerKey": labels[gold]}
    if task == "hellaswag":
        options, gold = _options(rng, world.home[animal], HOMES, 4)
        return {"ind": i, "activity_label": "Going home", "ctx_a": f"The {animal} is tired.",
                "ctx_b": "it walks back to the", "ctx": "", "endings": [f"{o}." for o in options],
                "source_id": f"synthetic-{i}", "split": "val", "split_type": "indomain",
                "label": str(gold)}
    if task == "openbookqa":
        options, gold = _options(rng, world.colour[animal], COLOURS, 4)
        labels = ["A", "B", "C", "D"]
        return {"id": f"obqa-{i}", "question_stem": f"The {animal} has a body that is",
                "choices": {"text": options, "label": labels}, "answerKey": labels[gold]}
    if task == "piqa":
        options, gold = _options(rng, world.food[animal], FOODS, 2)
        return {"goal": f"Feed the {animal}.", "sol1": f"Give it {options[0]}.",
                "sol2": f"Give it {options[1]}.", "label": gold}
    if task == "winogrande":
        other = rng.choice([b for b in world.animals if world.home[b] != world.home[animal]])
        pair = [animal, other]
        rng.shuffle(pair)
        return {"sentence": f"The {pair[0]} and the {pair[1]} went out, but only _ went to the "
                            f"{world.home[animal]}.",
                "option1": f"the {pair[0]}", "option2": f"the {pair[1]}",
                "answer": str(pair.index(animal) + 1)}
    raise ConfigError(f"Unknown synthetic task {task!r}; use one of {', '.join(TASKS)}.")


def make_split(world: World, task: str, seed: int, *, repeats: int = 1) -> list[dict[str, Any]]:
    """Documents of ``task``: ``repeats`` per animal (animals in order; distractors, choice
    order and Winogrande partners drawn with ``seed``)."""
    rng = random.Random(f"{seed}-{task}")
    docs = []
    for r in range(repeats):
        for j, animal in enumerate(world.animals):
            docs.append(_doc(task, world, animal, rng, r * len(world.animals) + j))
    return docs


def write_splits(world: World, directory: str | Path, *, seed: int = 0,
                 train_repeats: int = 2, test_repeats: int = 1) -> dict[str, dict[str, Path]]:
    """Write ``<task>-train.jsonl`` and ``<task>-test.jsonl`` for the six tasks; return
    ``{task: {"train": path, "test": path}}``. Train and test draw from different seeds."""
    directory = Path(directory)
    out = {}
    for task in TASKS:
        out[task] = {
            "train": write_jsonl(directory / f"{task}-train.jsonl",
                                 make_split(world, task, seed, repeats=train_repeats)),
            "test": write_jsonl(directory / f"{task}-test.jsonl",
                                make_split(world, task, seed + 10_007, repeats=test_repeats)),
        }
    return out


def training_texts(docs_by_task: dict[str, Iterable[dict[str, Any]]]) -> list[str]:
    """Context + right continuation of every document (what lm-eval would score), as text."""
    texts = []
    for task, docs in docs_by_task.items():
        for i, doc in enumerate(docs):
            q = doc_to_question(doc, TASK_FORMATS[task], i)
            context, continuation = q.requests[q.gold]
            texts.append(context + continuation)
    return texts


def build_word_tokenizer(texts: Iterable[str]):
    """A word-level fast tokenizer over ``texts``: lower-cased words and punctuation marks,
    ``<s>`` prepended to every encoding (like Llama's), ``<pad>``, ``</s>``, ``<unk>``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pre = pre_tokenizers.Whitespace()
    words = sorted({w for text in texts for w, _ in pre.pre_tokenize_str(text.lower())})
    specials = ["<unk>", "<pad>", "<s>", "</s>"]
    vocab = {w: i for i, w in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                   bos_token="<s>", eos_token="</s>", model_max_length=64)


def tiny_llama(tokenizer, *, hidden_size: int = 64, layers: int = 2, heads: int = 4,
               kv_heads: int = 2, intermediate_size: int = 128, max_positions: int = 64,
               seed: int = 0) -> nn.Module:
    """A ``LlamaForCausalLM`` built from a config (TinyLlama's architecture — RMSNorm, rotary
    positions, SwiGLU, grouped-query attention — at toy size), weights drawn with ``seed``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


class _Logits(nn.Module):
    """``lm(ids).logits``: the tensor `scirobust.training.fit` needs."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, ids: Tensor) -> Tensor:
        return self.lm(input_ids=ids, use_cache=False).logits


def _next_token_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy (nats) of every next token that is not padding (label −100)."""
    return nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                       labels[:, 1:].reshape(-1), ignore_index=-100)


def train_causal_lm(lm: nn.Module, tokenizer, texts: Sequence[str], *, epochs: int,
                    lr: float = 3e-3, batch_size: int = 32, seed: int = 0) -> list[float]:
    """Next-token training on ``texts`` (right-padded, padding ignored) with Adam; returns the
    mean loss per epoch (nats per token). The model is left in eval mode."""
    from scirobust.training import fit

    encoded = [tokenizer.encode(t) for t in texts]
    width = max(len(e) for e in encoded)
    ids = torch.full((len(encoded), width), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    for i, e in enumerate(encoded):
        ids[i, :len(e)] = torch.tensor(e)
        labels[i, :len(e)] = torch.tensor(e)
    optimizer = torch.optim.Adam(lm.parameters(), lr=lr)
    losses = fit(_Logits(lm), optimizer, (ids, labels), epochs=epochs, batch_size=batch_size,
                 loss_fn=_next_token_loss, generator=torch.Generator().manual_seed(seed))
    lm.eval()
    lm.zero_grad(set_to_none=True)
    return losses
