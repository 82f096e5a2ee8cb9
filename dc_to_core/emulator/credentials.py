"""The embedded emulator's connected app: what a newcomer's first run logs in with. A module
of its own so the pipeline can default to it without importing the emulator."""

DEFAULT_CLIENT_ID = "dc-to-core-emulator"
DEFAULT_CLIENT_SECRET = "emulator-secret-change-me"  # the embedded demo org only
