"""The daemon's local HTTP side: the control socket (lease commands, for the operator's CLI) and
the read-only loopback listener (``/status``, ``/metrics``, for Prometheus and a browser-free
look). Mutations never travel over TCP: any local process, a web page in a browser included, can
reach a loopback port, but only members of the daemon's group can reach its socket."""
