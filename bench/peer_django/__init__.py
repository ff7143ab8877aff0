"""The peer that aero-auth is measured against: Django with django-otp's TOTP devices.

Written for ``bench/versus_peer.py`` only, not part of the product. It is the
alternative a buyer would build: the engine of django-two-factor-auth
(django-otp's ``TOTPDevice``) behind two JSON endpoints with aero-auth's login
semantics, served by gunicorn:

- ``POST /v1/environments/bench/login`` ``{"username", "password"}``: Django's
  ``authenticate`` (ModelBackend, argon2id at m=19456 KiB, t=2, p=1, as
  aero-auth hashes), then ``{"status": "two_factor_required", "login_token"}``,
  a token signed with ``django.core.signing`` that names the user and expires
  after 5 minutes. The password step writes nothing.
- ``POST /v1/environments/bench/login/two-factor`` ``{"code"}`` with
  ``Authorization: Bearer <login token>``: in one transaction, the user's
  device row locked, ``TOTPDevice.verify_token`` (accepts a time step once,
  throttles failures), one audit row; then an access token.

Settings come from ``PEER_*`` variables (``settings.py``); ``python -m
peer_django.seed`` creates the tables and the benchmark's users.
"""
