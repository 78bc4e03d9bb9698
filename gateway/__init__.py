"""The simgw daemon: knows deals and the marketplace, never writes AT itself."""

__version__ = "0.1.0"
