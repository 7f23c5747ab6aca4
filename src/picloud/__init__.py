"""PiCloud: a Postgres-native realtime backend for small apps."""

SERVER_VERSION = "1.1.6"
SDK_VERSION = "1.7"
DASHBOARD_VERSION = "0.12.0"
CLIENT_VERSION = "1.0.0"

__version__ = SERVER_VERSION

VERSIONS: dict[str, str] = {
    "server": SERVER_VERSION,
    "sdk": SDK_VERSION,
    "dashboard": DASHBOARD_VERSION,
    "client": CLIENT_VERSION,
}
