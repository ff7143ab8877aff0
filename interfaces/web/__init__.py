"""The web UI: server-rendered pages under ``/ui/``, over the same services as the API.

``interfaces.web.app`` builds it. This package imports nothing itself: the cookie
sealer (``interfaces.web.sessions``) is also read by commands that load no web stack.
"""
