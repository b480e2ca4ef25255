"""Provenance of this generated package. Written by scripts/regenerate.py."""

VENDOR_SPEC_SHA256 = "91fb61ca22d81d05216d42afbdf915e0b04c31e1550f97370f257ed12234b346"
CORRECTED_SPEC_SHA256 = "68c304d00797651cc6cfdf6195e5c172255ebdb3706e7acf3c6032ade8c39afe"
GENERATOR = "openapi-python-client==0.29.1"
FORMATTER = "ruff==0.17.5"
