"""One module per task family: read examples, build features, metrics, decode predictions.

``REGISTRY`` maps a task name (`albert finetune --task NAME`) to its Task object (albert/tasks/base.py); nothing
outside this package branches on a task's name.
"""

from __future__ import annotations

from albert.errors import ConfigError
from albert.tasks.base import Task
from albert.tasks.classification import Classification
from albert.tasks.multiple_choice import MultipleChoice
from albert.tasks.ner import NamedEntities
from albert.tasks.qa import ExtractiveQA
from albert.tasks.similarity import SentenceSimilarity
from albert.tasks.summarization import ExtractiveSummarization

REGISTRY: dict[str, Task] = {
    task.name: task
    for task in (
        Classification("classification"),
        Classification("multi_label"),
        Classification("regression"),
        NamedEntities(),
        MultipleChoice(),
        ExtractiveQA(),
        ExtractiveSummarization(),
        SentenceSimilarity(),
    )
}


def for_model(config: dict) -> str:
    """The task a model directory was fine-tuned for, from its config.json (for directories without the
    finetune_config.json that `albert finetune` writes beside it)."""
    architecture = (config.get("architectures") or [""])[0]
    if architecture.startswith("AlbertForQuestionAnswering"):
        return "qa"
    if architecture == "AlbertForSequenceClassification":
        kinds = {"multi_label_classification": "multi_label", "regression": "regression"}
        return kinds.get(config.get("problem_type") or "", "classification")
    for task in REGISTRY.values():
        if task.head and task.head == architecture:
            return task.name
    raise ConfigError(f"a {architecture or 'model of unknown class'} is not fine-tuned for any task")


def get(name: str) -> Task:
    if name not in REGISTRY:
        raise ConfigError(f"unknown task {name!r}; one of {', '.join(REGISTRY)}")
    return REGISTRY[name]
