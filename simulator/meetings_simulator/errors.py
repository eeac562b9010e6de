"""Errors of the simulator, each mapped to one HTTP status by the app."""

from __future__ import annotations


class SimulatorError(Exception):
    """Root of the simulator's errors."""


class BadParameter(SimulatorError):
    """A request parameter or body field is missing or invalid (HTTP 400)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


class MeetingNotFound(SimulatorError):
    """No meeting with that id exists (HTTP 404)."""

    def __init__(self, meeting_id: int) -> None:
        super().__init__(f"meeting {meeting_id} not found")
        self.meeting_id = meeting_id
