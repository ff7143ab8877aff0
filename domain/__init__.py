"""The aero-auth domain: aggregates, events and pure rules.

Imports only the standard library, ``eventsourcing.domain`` and ``pyotp``.
"""
