"""The web UI: server-rendered pages under ``/ui/``, over the same services as the API."""

from interfaces.web.app import close_web_ui, create_web_ui

__all__ = ["close_web_ui", "create_web_ui"]
