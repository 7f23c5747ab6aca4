#!/usr/bin/env bash
# The Python client (picloud-client, clients/python): lint, format check and mypy strict,
# its tests against real `picloud serve` processes (the picloud.testing plugin starts
# them), then the sample app test suite in clients/python/examples. scripts/test has
# installed the client into .venv (editable) beside the server.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.venv/bin"
cd "$root/clients/python"

echo "== picloud-client: ruff check";  "$venv/ruff" check .
echo "== picloud-client: ruff format"; "$venv/ruff" format --check .
echo "== picloud-client: mypy";        "$venv/mypy"
(cd examples && echo "== picloud-client: mypy (examples)" && "$venv/mypy" --config-file ../pyproject.toml .)
echo "== picloud-client: tests";       "$venv/python" -m pytest -q
# With plugin autoloading off, as some projects run: the conftest line alone enables it.
echo "== picloud-client: example app test suite"
cd examples && PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 "$venv/python" -m pytest -q
