"""The aero-auth command line."""
