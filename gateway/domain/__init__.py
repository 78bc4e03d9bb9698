"""The gateway's rules, I/O-free: leases, messages, the SIM-bank scheduler, inventory, numbering.

Nothing here imports asyncio, sqlite3, serial, websockets or :mod:`gateway.config`; time comes in
as an argument. The core thread (:mod:`gateway.core`) owns the only live instances.
"""
