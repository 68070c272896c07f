"""One module per task family: read examples, build features, metrics, predictions and their serving route.

``REGISTRY`` maps a task name (`albert finetune --task NAME`) to its Task object (albert/tasks/base.py); nothing
outside this package branches on a task's name. ``for_model`` finds the task of a model directory.
"""

from __future__ import annotations

from albert.errors import ConfigError
from albert.tasks.base import Task
from albert.tasks.classification import Classification
from albert.tasks.embedding import Embedding
from albert.tasks.fill_mask import FillMask
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
        FillMask(),  # before Embedding: a masked-LM directory fills masks unless embeddings are asked for
        Embedding(),
    )
}


def for_model(config: dict, trained_for: str | None = None) -> str:
    """The task a model directory holds: what `albert finetune` recorded (finetune_config.json's task, passed as
    ``trained_for``), else the first task that accepts its config.json (its class and problem type)."""
    if trained_for:
        return get(trained_for).name
    for task in REGISTRY.values():
        if task.accepts(config):
            return task.name
    architecture = (config.get("architectures") or [""])[0]
    served = sorted({a for task in REGISTRY.values() for a in task.architectures})
    raise ConfigError(f"a {architecture or 'model of unknown class'} is no task's model (known: {', '.join(served)})")


def pipeline_tag(config: dict) -> str | None:
    """The Hub's task tag of a model directory with this config.json (its task's); None for a class no task has."""
    try:
        return get(for_model(config)).pipeline_tag
    except ConfigError:
        return None


def get(name: str) -> Task:
    if name not in REGISTRY:
        raise ConfigError(f"unknown task {name!r}; one of {', '.join(REGISTRY)}")
    return REGISTRY[name]
