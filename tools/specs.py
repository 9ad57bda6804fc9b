"""What the model sees of each tool: name, description (the usage hints live here) and argument schema.

The athlete id is never an argument: every tool acts for the athlete of the run's `Context`.
"""

from __future__ import annotations

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field


class NoArgs(BaseModel):
    """No arguments."""


class SetPinnedFactArgs(BaseModel):
    """Arguments of `set_pinned_fact`."""

    key: str = Field(description="snake_case fact key, e.g. goal, level, ftp_w, injuries, equipment, schedule")
    value: str | float | int | bool = Field(description="the value the athlete stated, in their words or a number")


class SearchConversationArgs(BaseModel):
    """Arguments of `search_conversation`."""

    query: str = Field(description="what to look for, in plain words (e.g. 'left shoulder pain advice')")
    max_items: int = Field(default=3, ge=1, le=3, description="how many snippets, at most 3")


class DayArgs(BaseModel):
    """A day given as an ISO date or as words."""

    date: str | None = Field(default=None, description="ISO date YYYY-MM-DD")
    day: str | None = Field(default=None, description="a day in words: 'last Thursday', 'yesterday', 'today'")


class CompareArgs(BaseModel):
    """Arguments of `compare_workout_to_plan`."""

    date: str | None = Field(
        default=None,
        description="ISO date or words ('last Thursday'); omit it to use the day the last logs or plan query used",
    )


class TrainingLoadArgs(BaseModel):
    """Arguments of `get_training_load`."""

    as_of: str | None = Field(default=None, description="ISO date or words; default today")


TOOL_DESCRIPTIONS: dict[str, tuple[str, type[BaseModel]]] = {
    "get_pinned_facts": (
        "The athlete's current durable facts: goals, injuries, equipment, schedule, nutrition, level, FTP and "
        "power bests, with where each came from. Use it before answering about the athlete; don't guess.",
        NoArgs,
    ),
    "set_pinned_fact": (
        "Propose a durable fact the athlete stated (goal, injury, equipment, schedule, level...). Nothing is "
        "saved until the athlete confirms; tell them it awaits their confirmation.",
        SetPinnedFactArgs,
    ),
    "search_conversation": (
        "Search older conversations with this athlete (beyond the recent turns) for what was said or decided. "
        "Returns at most 3 short dated snippets. Use it when the athlete refers to an earlier discussion.",
        SearchConversationArgs,
    ),
    "get_last_query_context": (
        "The parameters the last tools resolved (last_logs_query date, last_plan_slice day, last ride): use it "
        "to resolve 'that ride', 'that day', 'and tomorrow?'.",
        NoArgs,
    ),
    "get_ride_logs": (
        "Rides recorded on one day (date or words like 'last Thursday', resolved in the athlete's time zone): "
        "duration, distance, power, TSS, heart rate.",
        DayArgs,
    ),
    "get_plan": ("Planned workouts on one day (date or words), from the athlete's training plan.", DayArgs),
    "compare_workout_to_plan": (
        "Planned versus actual for one day. With no date it uses the day of the last logs or plan query; if "
        "there is none it says so: then ask the athlete which day.",
        CompareArgs,
    ),
    "get_training_load": (
        "Fitness (CTL), fatigue (ATL), form (TSB), ramp rate, acute:chronic ratio, monotony, strain and risk "
        "flags (each with its source) from ride TSS, as of a day (default today). A flag is a prompt to look, "
        "not a diagnosis.",
        TrainingLoadArgs,
    ),
}


async def _not_executed(**_: object) -> str:
    """Placeholder body: the chat graph's tools node runs tools, never the model-facing objects."""
    raise RuntimeError("coach tools are executed by the chat graph's tools node")


def model_tools() -> list[BaseTool]:
    """The tools to bind to the chat model (schemas and descriptions only)."""
    return [
        StructuredTool.from_function(
            coroutine=_not_executed, name=name, description=description, args_schema=schema, infer_schema=False
        )
        for name, (description, schema) in TOOL_DESCRIPTIONS.items()
    ]
