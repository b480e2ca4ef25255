"""Provenance of this generated package. Written by scripts/regenerate.py."""

VENDOR_SPEC_SHA256 = "91fb61ca22d81d05216d42afbdf915e0b04c31e1550f97370f257ed12234b346"
CORRECTED_SPEC_SHA256 = "f6dac87da41fd0b4084d2adc8f66fb8e19652d936f60ddc9d5d67584023c8e3a"
GENERATOR = "openapi-python-client==0.29.1"
FORMATTER = "ruff==0.17.5"
