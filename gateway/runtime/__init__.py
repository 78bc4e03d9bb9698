"""The event loop's side: wiring, ingest, timers, supervision, the switcher; reads core snapshots."""
