"""Runs flows durably on django-q2 (SPEC §8).

A run is a queue of (method, payload) items. `run_step` executes the head of the queue as one task,
then saves state, the step record, the new queue and `seq + 1` with a compare-and-set on `seq`, so a
task delivered twice (a worker killed mid-step, a broker retry) never records a step twice. A human step
creates a review request and leaves the run `waiting_for_human` — no worker waits. When the request
resolves (any channel, or its timeout), `resume_after_request` continues the run, again exactly once.

Each subject has its module: `queue` (what an event adds to a run's queue, payloads as JSON, the task
that runs its head), `human` (review requests and the resume after them), `crew` (crew-style tasks and
their resume), `runs` (kickoff, one step, stalled runs). They import in that order, never back.
"""

# `from flows import engine; engine.kickoff(...)` predates the split; callers in the project import
# from the module that defines the name, so that is where a monkeypatch takes effect.
from flows.engine.crew import resume_task
from flows.engine.human import resume_after_request
from flows.engine.runs import flow_for_deployment, kickoff, recover_stalled_runs, run_step
from flows.errors import FlowError

__all__ = [
    "FlowError",
    "flow_for_deployment",
    "kickoff",
    "recover_stalled_runs",
    "resume_after_request",
    "resume_task",
    "run_step",
]
