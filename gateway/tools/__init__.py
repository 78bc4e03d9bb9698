"""Tools that are not the daemon: the reference marketplace (simgw.v1) and the reference SMSHub
hub, the demos of both, ``simgw listen``, ``simgw sims scan`` and the SMS JSON views of
``simgw pdu decode``.

They use the daemon's packages; the daemon never uses them: ``simgw run`` imports nothing from
here (``tests/test_import_boundaries.py`` runs the daemon and checks), and ``gateway/cli.py``
imports each tool inside its own subcommand. The simulated modems and banks live with the
drivers they imitate (``drivers/simulator``) under the same rule.
"""
