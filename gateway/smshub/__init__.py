"""Selling through an SMSHub-compatible marketplace (the SMSHUB Agent Protocol, version of March 6,
2024; OnlineSim's Reseller API v1 flavour) from the same pool, engine and store as simgw.v1.

protocol (I/O-free codec), names (country/operator/service names), settings ([smshub] config),
records (its store tables), desk (core-thread decisions), agent (the HTTP endpoint), push (the
PUSH_SMS sender). The reference hub and its demo are tools, not the daemon: gateway/tools/hub.py
and gateway/tools/hubdemo.py.
"""
