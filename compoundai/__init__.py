"""compoundai: decide between prompting, RAG and fine-tuning; build the mix; prove it.

Importing this package stays light (no torch, no chromadb): heavy backends load inside the
lanes and generators that need them.

    >>> import compoundai
    >>> task = compoundai.load_task("examples/banking77/task.yaml")           # doctest: +SKIP
    >>> compoundai.Router().decide(compoundai.profile(task)).plan            # doctest: +SKIP
    'sft'
"""

from typing import TYPE_CHECKING, Any

from compoundai.context import RunContext
from compoundai.contract import Answer
from compoundai.errors import CompoundAIError, Problem, RunTimeFailure, UserInputError
from compoundai.profile import TaskProfile, profile
from compoundai.router import Decision, Router
from compoundai.system import CompoundSystem
from compoundai.task import Task, TaskSpec, load_task

if TYPE_CHECKING:
    from compoundai.system_dir import load_system, save_system

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
    "load_system",
    "load_task",
    "profile",
    "save_system",
]


def __getattr__(name: str) -> Any:
    # lazily: the system-directory module knows every lane's system class
    if name in ("load_system", "save_system"):
        from compoundai import system_dir

        return getattr(system_dir, name)
    raise AttributeError(name)
