"""Multiple-choice benchmark files read from local disk, turned into lm-eval's requests.

lm-evaluation-harness (0.4.x) scores a multiple-choice document as a list of
``(context, continuation)`` requests, one per choice, and compares their log-likelihoods.
`doc_to_question` builds exactly those requests for the zero-shot prompt styles of its
``arc_easy``, ``arc_challenge``, ``hellaswag``, ``openbookqa``, ``piqa`` and ``winogrande``
tasks (templates copied from lm-eval's task YAMLs, target delimiter ``" "``):

=============  ==========================================  ==============================
format         context                                     continuations
=============  ==========================================  ==============================
arc            ``"Question: {question}\\nAnswer:"``          ``" " + choice``
openbookqa     ``"{question_stem}"``                         ``" " + choice``
hellaswag      ``preprocess(activity_label + ": " + ctx_a     ``" " + preprocess(ending)``
               + " " + ctx_b.capitalize())``
piqa           ``"Question: {goal}\\nAnswer:"``              ``" " + sol1``, ``" " + sol2``
winogrande     sentence up to ``_`` + option (one per        ``" " + rest of the sentence``
               choice: the *contexts* differ)
=============  ==========================================  ==============================

Files: JSON lines (``.jsonl``), a JSON list (``.json``) or Parquet (``.parquet``, needs
pyarrow), in the field layout of the Hugging Face datasets lm-eval loads (``allenai/ai2_arc``,
``Rowan/hellaswag``, ``allenai/openbookqa`` *main*, ``baber/piqa``, ``allenai/winogrande``),
or the original releases' layouts (ARC/OpenBookQA nested ``question.stem``; PIQA labels in a
sibling ``<stem>-labels.lst``). Nothing is ever downloaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scirobust.errors import ConfigError, DataError

__all__ = [
    "FORMATS",
    "TASK_FORMATS",
    "MCQuestion",
    "Task",
    "doc_to_question",
    "gold_index",
    "guess_format",
    "hellaswag_preprocess",
    "parse_task_spec",
    "read_docs",
    "read_task_file",
    "write_jsonl",
    "write_lm_eval_configs",
]

TASK_FORMATS: dict[str, str] = {
    "arc_easy": "arc", "arc_challenge": "arc", "hellaswag": "hellaswag",
    "openbookqa": "openbookqa", "piqa": "piqa", "winogrande": "winogrande",
}
"""lm-eval task name -> document format read here."""

# lm-eval's own YAML of each task, relative to lm_eval/tasks (for `write_lm_eval_configs`).
_LM_EVAL_YAML = {
    "arc_easy": "arc/arc_easy.yaml", "arc_challenge": "arc/arc_challenge.yaml",
    "hellaswag": "hellaswag/hellaswag.yaml", "openbookqa": "openbookqa/openbookqa.yaml",
    "piqa": "piqa/piqa.yaml", "winogrande": "winogrande/default.yaml",
}


@dataclass(frozen=True)
class MCQuestion:
    """One multiple-choice document as lm-evaluation-harness requests it.

    ``requests``: one ``(context, continuation)`` pair per choice; ``gold``: index of the
    right choice; ``choices``: lm-eval's ``doc_to_choice`` strings, whose lengths in characters
    normalise ``acc_norm``; ``doc_id``: position in its file.
    """

    requests: tuple[tuple[str, str], ...]
    gold: int
    choices: tuple[str, ...]
    doc_id: int = 0

    def __post_init__(self) -> None:
        if len(self.requests) < 2 or len(self.choices) != len(self.requests):
            raise DataError(f"Document {self.doc_id}: a multiple-choice question needs >= 2 "
                            f"choices; got {len(self.requests)} requests and "
                            f"{len(self.choices)} choices.")
        if not 0 <= self.gold < len(self.requests):
            raise DataError(f"Document {self.doc_id}: gold index {self.gold} is outside its "
                            f"{len(self.requests)} choices.")

    @property
    def n_choices(self) -> int:
        """Number of choices."""
        return len(self.requests)


@dataclass(frozen=True)
class Task:
    """A benchmark read from disk: its name, document format, questions and source file."""

    name: str
    format: str
    questions: tuple[MCQuestion, ...]
    path: Path | None = None

    @property
    def chance(self) -> float:
        """Accuracy of uniform guessing: the mean of 1/(number of choices) (fraction)."""
        return sum(1.0 / q.n_choices for q in self.questions) / max(len(self.questions), 1)


# --------------------------------------------------------------------------- documents
def hellaswag_preprocess(text: str) -> str:
    """lm-eval's HellaSwag clean-up: strip, `` [title]`` → ``". "``, drop ``[...]``, ``"  "`` →
    ``" "``."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def _get(doc: Mapping[str, Any], key: str, doc_id: int, fmt: str) -> Any:
    if key not in doc:
        raise DataError(f"{fmt} document {doc_id} has no field {key!r}; its fields are "
                        f"{sorted(doc)}.")
    return doc[key]


def _stem_and_choices(doc: Mapping[str, Any], stem_key: str, doc_id: int,
                      fmt: str) -> tuple[str, list[str], list[str]]:
    """Question text, choice texts and labels of an ARC/OpenBookQA document, in the Hugging
    Face layout (``choices: {text: [...], label: [...]}``) or the original nested one
    (``question: {stem, choices: [{text, label}]}``)."""
    question = doc.get("question")
    if isinstance(question, Mapping):  # original AI2 release
        stem = _get(question, "stem", doc_id, fmt)
        choices = _get(question, "choices", doc_id, fmt)
        texts = [str(c["text"]) for c in choices]
        labels = [str(c["label"]) for c in choices]
        return str(stem), texts, labels
    stem = _get(doc, stem_key, doc_id, fmt)
    choices = _get(doc, "choices", doc_id, fmt)
    if not isinstance(choices, Mapping) or "text" not in choices or "label" not in choices:
        raise DataError(f"{fmt} document {doc_id}: 'choices' must be {{'text': [...], 'label': "
                        f"[...]}}; got {choices!r}.")
    return str(stem), [str(t) for t in choices["text"]], [str(lb) for lb in choices["label"]]


def _answer_key(doc: Mapping[str, Any], labels: list[str], doc_id: int, fmt: str) -> int:
    key = str(_get(doc, "answerKey", doc_id, fmt)).lstrip()
    if key not in labels:
        raise DataError(f"{fmt} document {doc_id}: answerKey {key!r} is not one of the choice "
                        f"labels {labels}.")
    return labels.index(key)


def _label(value: Any, n: int, doc_id: int, fmt: str, field: str = "label") -> int:
    try:
        gold = int(value)
    except (TypeError, ValueError):
        raise DataError(f"{fmt} document {doc_id}: {field} {value!r} is not a choice index "
                        "(an unlabelled test split? use the validation split).") from None
    if not 0 <= gold < n:
        raise DataError(f"{fmt} document {doc_id}: {field} {gold} is outside 0..{n - 1}.")
    return gold


def _arc(doc: Mapping[str, Any], doc_id: int) -> MCQuestion:
    stem, texts, labels = _stem_and_choices(doc, "question", doc_id, "arc")
    context = f"Question: {stem}\nAnswer:"
    return MCQuestion(tuple((context, f" {t}") for t in texts),
                      _answer_key(doc, labels, doc_id, "arc"), tuple(texts), doc_id)


def _openbookqa(doc: Mapping[str, Any], doc_id: int) -> MCQuestion:
    stem, texts, labels = _stem_and_choices(doc, "question_stem", doc_id, "openbookqa")
    return MCQuestion(tuple((stem, f" {t}") for t in texts),
                      _answer_key(doc, labels, doc_id, "openbookqa"), tuple(texts), doc_id)


def _hellaswag(doc: Mapping[str, Any], doc_id: int) -> MCQuestion:
    if "query" in doc and "gold" in doc:  # already through lm-eval's process_docs
        query, choices = str(doc["query"]), [str(c) for c in _get(doc, "choices", doc_id,
                                                                   "hellaswag")]
        gold_value = doc["gold"]
    else:
        ctx = (str(_get(doc, "ctx_a", doc_id, "hellaswag")) + " "
               + str(_get(doc, "ctx_b", doc_id, "hellaswag")).capitalize())
        query = hellaswag_preprocess(str(_get(doc, "activity_label", doc_id, "hellaswag"))
                                     + ": " + ctx)
        choices = [hellaswag_preprocess(str(e))
                   for e in _get(doc, "endings", doc_id, "hellaswag")]
        gold_value = _get(doc, "label", doc_id, "hellaswag")
    gold = _label(gold_value, len(choices), doc_id, "hellaswag")
    return MCQuestion(tuple((query, f" {c}") for c in choices), gold, tuple(choices), doc_id)


def _piqa(doc: Mapping[str, Any], doc_id: int) -> MCQuestion:
    context = f"Question: {_get(doc, 'goal', doc_id, 'piqa')}\nAnswer:"
    sols = [str(_get(doc, "sol1", doc_id, "piqa")), str(_get(doc, "sol2", doc_id, "piqa"))]
    gold = _label(_get(doc, "label", doc_id, "piqa"), 2, doc_id, "piqa")
    return MCQuestion(tuple((context, f" {s}") for s in sols), gold, tuple(sols), doc_id)


def _winogrande(doc: Mapping[str, Any], doc_id: int) -> MCQuestion:
    sentence = str(_get(doc, "sentence", doc_id, "winogrande"))
    if "_" not in sentence:
        raise DataError(f"winogrande document {doc_id}: the sentence has no blank '_': "
                        f"{sentence!r}.")
    idx = sentence.index("_")
    options = [str(_get(doc, "option1", doc_id, "winogrande")),
               str(_get(doc, "option2", doc_id, "winogrande"))]
    contexts = tuple(sentence[:idx] + opt for opt in options)
    target = sentence[idx + 1:].strip()
    answer = str(_get(doc, "answer", doc_id, "winogrande"))
    if answer not in ("1", "2"):
        raise DataError(f"winogrande document {doc_id}: answer must be '1' or '2'; got "
                        f"{answer!r} (an unlabelled test split? use the validation split).")
    return MCQuestion(tuple((c, f" {target}") for c in contexts), int(answer) - 1, contexts,
                      doc_id)


FORMATS: dict[str, Callable[[Mapping[str, Any], int], MCQuestion]] = {
    "arc": _arc, "openbookqa": _openbookqa, "hellaswag": _hellaswag, "piqa": _piqa,
    "winogrande": _winogrande,
}
"""Document format -> converter ``(doc, doc_id) -> MCQuestion``."""


def doc_to_question(doc: Mapping[str, Any], fmt: str, doc_id: int = 0) -> MCQuestion:
    """The lm-eval requests, gold index and choice strings of one document of format ``fmt``
    (one of `FORMATS`)."""
    if fmt not in FORMATS:
        raise ConfigError(f"Unknown document format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if not isinstance(doc, Mapping):
        raise DataError(f"{fmt} document {doc_id} is a {type(doc).__name__}, not an object.")
    return FORMATS[fmt](doc, doc_id)


def gold_index(doc: Mapping[str, Any]) -> int:
    """Index of the right choice of an lm-eval document of any of the six formats (as
    lm-eval hands it to a model: HellaSwag already processed, with ``gold``)."""
    return doc_to_question(doc, guess_format([doc])).gold


def guess_format(docs: Sequence[Mapping[str, Any]], hint: str = "") -> str:
    """The document format of ``docs`` from their fields; ``hint`` (a task or file name)
    separates ARC from OpenBookQA in the original nested layout they share."""
    if not docs:
        raise DataError("No documents to read.")
    fields = set(docs[0])
    if {"sentence", "option1", "option2"} <= fields:
        return "winogrande"
    if {"goal", "sol1", "sol2"} <= fields:
        return "piqa"
    if {"ctx_a", "ctx_b", "endings"} <= fields or {"query", "choices", "gold"} <= fields:
        return "hellaswag"
    if "question_stem" in fields:
        return "openbookqa"
    if "question" in fields and "answerKey" in fields:
        hint = hint.lower()
        return "openbookqa" if ("openbook" in hint or "obqa" in hint) else "arc"
    raise DataError(
        f"Cannot tell the benchmark from the fields {sorted(fields)}: expected those of "
        "ARC (question, choices, answerKey), OpenBookQA (question_stem, choices, answerKey), "
        "HellaSwag (activity_label, ctx_a, ctx_b, endings, label), PIQA (goal, sol1, sol2, "
        "label) or Winogrande (sentence, option1, option2, answer). Name the task: "
        "TASK=PATH, e.g. arc_challenge=ARC-Challenge-test.jsonl."
    )


# --------------------------------------------------------------------------- files
def read_docs(path: str | Path) -> list[dict[str, Any]]:
    """The documents of a ``.jsonl``, ``.json`` (a list, or ``{"data": [...]}``) or
    ``.parquet`` file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Task file {path} does not exist (nothing is downloaded: give a "
                          "local .jsonl, .json or .parquet file).")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow), "
                              "or convert the file to JSON lines.") from None
        return [dict(row) for row in pq.read_table(path).to_pylist()]
    text = path.read_text(encoding="utf-8")
    try:
        if suffix == ".jsonl":
            docs = [json.loads(line) for line in text.splitlines() if line.strip()]
        elif suffix == ".json":
            loaded = json.loads(text)
            docs = loaded.get("data") if isinstance(loaded, dict) else loaded
        else:
            raise ConfigError(f"{path}: unknown file type {suffix!r}; use .jsonl, .json or "
                              ".parquet.")
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON{' lines' if suffix == '.jsonl' else ''}: "
                        f"{exc}.") from exc
    if not isinstance(docs, list) or not all(isinstance(d, dict) for d in docs):
        raise DataError(f"{path}: expected a list of JSON objects (one document each).")
    return docs


def _piqa_labels(path: Path, docs: list[dict[str, Any]]) -> None:
    """Put the labels of the original PIQA release (``<stem>-labels.lst``) into ``docs``."""
    if not docs or "label" in docs[0] or "goal" not in docs[0]:
        return
    labels_file = path.with_name(f"{path.stem}-labels.lst")
    if not labels_file.is_file():
        raise DataError(f"{path}: PIQA documents without 'label'; put the labels in the "
                        f"documents or in {labels_file.name} beside the file (original release "
                        "layout).")
    labels = [line.strip() for line in labels_file.read_text().splitlines() if line.strip()]
    if len(labels) != len(docs):
        raise DataError(f"{labels_file} has {len(labels)} labels for {len(docs)} documents.")
    for doc, label in zip(docs, labels, strict=True):
        doc["label"] = int(label)


def read_task_file(path: str | Path, name: str | None = None, *,
                   limit: int | None = None) -> Task:
    """Read one benchmark file into a `Task`.

    Args:
        path: a local ``.jsonl``, ``.json`` or ``.parquet`` file of documents.
        name: the task's name; one of `TASK_FORMATS` fixes the document format, any other
            name (or None: the file name) lets the format be recognised from the fields.
        limit: read only the first ``limit`` documents (as lm-eval's ``--limit``).
    """
    path = Path(path)
    docs = read_docs(path)
    if not docs:
        raise DataError(f"{path} holds no documents.")
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"limit must be >= 1; got {limit}.")
        docs = docs[:limit]
    _piqa_labels(path, docs)
    name = name or path.stem
    fmt = TASK_FORMATS.get(name) or guess_format(docs, hint=f"{name} {path.name}")
    questions = tuple(doc_to_question(doc, fmt, i) for i, doc in enumerate(docs))
    return Task(name, fmt, questions, path)


def parse_task_spec(spec: str) -> tuple[str | None, Path]:
    """``"NAME=PATH"`` or ``"PATH"`` → ``(NAME or None, PATH)``."""
    name, sep, rest = spec.partition("=")
    if sep and name and not Path(spec).exists():
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
            raise ConfigError(f"Task name {name!r} in {spec!r}: use letters, digits, '_', '-'.")
        return name, Path(rest)
    return None, Path(spec)


def write_jsonl(path: str | Path, docs: Iterable[Mapping[str, Any]]) -> Path:
    """Write documents as JSON lines (UTF-8) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(dict(d)) + "\n" for d in docs), encoding="utf-8")
    return path


def write_lm_eval_configs(tasks: Mapping[str, str | Path], directory: str | Path, *,
                          prefix: str = "local_",
                          cache_dir: str | Path | None = None) -> list[str]:
    """Task YAMLs that make lm-eval itself read local files (``--include_path DIRECTORY``).

    ``tasks`` maps an lm-eval task name (`TASK_FORMATS`) to a local ``.jsonl``/``.json``
    file; each YAML includes lm-eval's own task definition (prompt, choices, metrics) and
    replaces only its data source by the file (Hugging Face ``json`` builder, no download).
    ``cache_dir`` is where the ``datasets`` library caches the parsed files (default: its
    own). Returns the new task names (``prefix + name``). Imports lm_eval (to find its YAMLs).
    """
    try:
        import lm_eval
    except ImportError:
        raise ConfigError("write_lm_eval_configs needs lm-eval: pip install 'lm-eval[hf]'.") \
            from None
    root = Path(lm_eval.__file__).parent / "tasks"
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for task, file in tasks.items():
        if task not in _LM_EVAL_YAML:
            raise ConfigError(f"No lm-eval task {task!r}; use one of {', '.join(_LM_EVAL_YAML)}.")
        file = Path(file).resolve()
        if file.suffix.lower() not in (".jsonl", ".json"):
            raise ConfigError(f"{file}: lm-eval's json builder reads .jsonl or .json files.")
        split = "validation" if task in ("hellaswag", "piqa", "winogrande") else "test"
        other = {"test": "validation_split", "validation": "test_split"}[split]
        lines = [f"include: {json.dumps(str(root / _LM_EVAL_YAML[task]))}",
                 f"task: {prefix}{task}", "tag: []", "dataset_path: json", "dataset_name: null",
                 "dataset_kwargs:", "  data_files:", f"    {split}: {json.dumps(str(file))}",
                 *([f"  cache_dir: {json.dumps(str(Path(cache_dir).resolve()))}"]
                   if cache_dir is not None else []),
                 "training_split: null", f"{other}: null", f"{split}_split: {split}",
                 "fewshot_split: null"]
        (directory / f"{prefix}{task}.yaml").write_text("\n".join(lines) + "\n")
        names.append(f"{prefix}{task}")
    return names
