"""The I/O-free AT core: line framing, result codes, URCs, prompts and command correlation."""

from drivers.at.protocol import AtProtocol, BadBytes, Command, Event, Response, StrayLine, Urc
from drivers.at.results import FinalResult, ResultKind

__all__ = ["AtProtocol", "BadBytes", "Command", "Event", "FinalResult", "Response", "ResultKind",
           "StrayLine", "Urc"]
