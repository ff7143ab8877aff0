"""The HTTP interface of shared/API.md."""

from interfaces.http.app import create_app

__all__ = ["create_app"]
