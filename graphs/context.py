"""The run context shared by every graph.

The athlete id comes from here (the authenticated user, or the command line's `--athlete`), never from the
model, a tool argument or the request body.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Context:
    """Per-run knobs passed with `graph.ainvoke(..., context=Context(...))`.

    Attributes:
        athlete_id: whose memory this run reads and writes; every query filters by it.
        session_id: the conversation (chat) or job (debrief) this run belongs to.
        timezone: IANA time zone of the athlete, used to resolve relative dates.
        confirm_facts_inline: when a tool proposes a fact, pause the run with a LangGraph `interrupt` so the
            athlete confirms or rejects it at once (interactive chat, the API); when False the proposal stays
            pending for `coach facts --confirm` (one-shot `coach chat --message`).
    """

    athlete_id: str
    session_id: str = "default"
    timezone: str = "UTC"
    confirm_facts_inline: bool = False
