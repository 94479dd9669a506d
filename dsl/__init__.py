"""dsl: the Chain-of-Edits tool — edit language, editor state, sandboxed verifier, episodes.

Pure standard library: no ML and no LSP imports. The trainer and the language server both build
on this package: on its single rollout loop, `run_episode`, and on the repair engine, `repair`
(fault localization, edit search and a model's proposals under one budget; dsl/repair.py).
"""
from .commands import GRAMMAR_GBNF, TEMPLATES, Command, ParseError, can_end, can_extend, edit_script, line_edit, parse
from .conversation import SYSTEM_PROMPT, new_conversation
from .episode import Episode, OutOfTime, Trajectory, Turn, default_verifier, run_episode, scripted_policy
from .repair import Repair, repair
from .repair_config import PROPOSERS, RepairConfig, RepairResult
from .task_check import TaskCheck
from .sandbox import Job, JobResult, Limits, isolation, run_job
from .sandbox_child import is_eq_compare
from .state import ApplyError, EditorState, lines_in_view
from .tasks import Task, load_mbpp, load_tasks, write_tasks
from .verifier import TestResult, Verifier, VerifyResult, plan_tests

__all__ = [
    "GRAMMAR_GBNF", "TEMPLATES", "Command", "ParseError", "can_end", "can_extend", "edit_script", "line_edit", "parse", "SYSTEM_PROMPT",
    "new_conversation", "Episode", "OutOfTime", "Trajectory", "Turn", "default_verifier", "run_episode",
    "scripted_policy", "PROPOSERS", "Repair", "RepairConfig", "RepairResult", "TaskCheck", "repair", "Job", "JobResult", "Limits", "isolation", "run_job", "ApplyError",
    "EditorState", "lines_in_view", "Task", "load_mbpp", "load_tasks", "write_tasks", "TestResult", "Verifier", "VerifyResult",
    "plan_tests", "is_eq_compare",
]
