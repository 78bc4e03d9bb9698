"""The core thread alone: the service (one :meth:`~GatewayCore.atomic` per decision), intake of
parts, the banks' glue, persistence (decisions to rows and outbox; one Lease <-> row mapper), and
the frozen :class:`CoreSnapshot` it publishes after each commit for the event loop to read."""

from gateway.core.persistence import decisions_json
from gateway.core.service import GatewayCore
from gateway.core.snapshot import CoreSnapshot

__all__ = ["CoreSnapshot", "GatewayCore", "decisions_json"]
