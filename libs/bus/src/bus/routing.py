"""Which topic carries which event type."""

from __future__ import annotations

from bus.topics import Topic
from contracts import events as ev

TOPIC_OF: dict[type[ev.EventData], Topic] = {
    ev.RunRequested: Topic.RUN_REQUESTED,
    ev.StepRequested: Topic.STEP_REQUESTED,
    ev.StepSucceeded: Topic.STEP_FINISHED,
    ev.StepFailed: Topic.STEP_FINISHED,
    ev.StepStarted: Topic.STEP_FINISHED,
    ev.StepProgress: Topic.STEP_FINISHED,
    ev.TimerFired: Topic.RUN_TIMERS,
    ev.RunCancelRequested: Topic.RUN_CANCEL,
    ev.RunStarted: Topic.RUN_EVENTS,
    ev.RunCompleted: Topic.RUN_EVENTS,
    ev.RunFailed: Topic.RUN_EVENTS,
    ev.RunCanceled: Topic.RUN_EVENTS,
}
