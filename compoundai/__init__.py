"""compoundai: decide between prompting, RAG and fine-tuning; build the mix; prove it.

Importing this package stays light (no torch, no chromadb): heavy backends load inside the
lanes and generators that need them.

    >>> import compoundai
    >>> task = compoundai.load_task("examples/banking77/task.yaml")           # doctest: +SKIP
    >>> compoundai.Router().decide(compoundai.profile(task)).plan            # doctest: +SKIP
    'sft'
"""

from compoundai.context import RunContext
from compoundai.errors import CompoundAIError, Problem, RunTimeFailure, UserInputError
from compoundai.profile import TaskProfile, profile
from compoundai.router import Decision, Router
from compoundai.system import Answer, CompoundSystem
from compoundai.task import Task, TaskSpec, load_task

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "CompoundAIError",
    "CompoundSystem",
    "Decision",
    "Problem",
    "Router",
    "RunContext",
    "RunTimeFailure",
    "Task",
    "TaskProfile",
    "TaskSpec",
    "UserInputError",
    "load_task",
    "profile",
]
