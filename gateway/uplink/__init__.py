"""The marketplace uplink: protocol simgw.v1 (I/O-free codec) and its WebSocket client."""
