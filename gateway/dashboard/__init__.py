"""The operator's dashboard on the read-only TCP listener: a page at ``GET /``, its live stream,
the password for a LAN listener, and the in-memory history its charts are drawn from."""
