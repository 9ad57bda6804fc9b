"""What `make serve-prod` (GraphHarbor) loads by file: `langgraph.prod.json` names this file for every graph and app.

GraphHarbor executes these files under module names of its own without registering them in `sys.modules`, so a
module that defines dataclasses or state classes with postponed annotations (`from __future__ import
annotations`) fails there (`NameError`, `AttributeError` from `dataclasses`). This file only imports them from
their real modules: the graphs, and the coach's routes for GraphHarbor (`server.prod_app`).
"""

from graphs.chat import graph as chat
from graphs.debrief_coach import graph as debrief_coach
from graphs.pending_debriefs import graph as pending_debriefs
from graphs.training_load_auditor import graph as training_load_auditor
from server.prod_app import app

__all__ = ["app", "chat", "debrief_coach", "pending_debriefs", "training_load_auditor"]
