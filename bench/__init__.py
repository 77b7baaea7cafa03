"""``make bench``: what the gateway adds on top of a fake upstream, measured from outside.

``python -m bench`` runs the whole thing (services, fakes, gateway, load, report); see ``bench/README.md``.
"""
