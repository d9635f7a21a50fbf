"""Turn result values into rich tables for people or JSON documents for scripts.

One module per family of commands; everything the CLI uses is re-exported here, lazily:
``from mxflip.render import render_status`` loads only the status renderer (and rich only
where a table is drawn), so each command pays for its own output alone.
JSON documents are stable contracts: fields are added, never renamed or dropped.
Rich output respects NO_COLOR and falls back to plain text when stdout is not a terminal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mxflip._lazy import lazy_exports

_EXPORTS = {
    "canary_check_json": "mxflip.render.canary",
    "canary_send_json": "mxflip.render.canary",
    "canary_status_json": "mxflip.render.canary",
    "render_canary_check": "mxflip.render.canary",
    "render_canary_send": "mxflip.render.canary",
    "render_canary_status": "mxflip.render.canary",
    "check_json": "mxflip.render.check",
    "readiness_json": "mxflip.render.check",
    "render_check": "mxflip.render.check",
    "JSON_VERSION": "mxflip.render.common",
    "records_text": "mxflip.render.common",
    "stderr_console": "mxflip.render.common",
    "stdout_console": "mxflip.render.common",
    "when": "mxflip.render.common",
    "write_json": "mxflip.render.common",
    "drill_json": "mxflip.render.drill",
    "drill_junit": "mxflip.render.drill",
    "render_drill": "mxflip.render.drill",
    "config_json": "mxflip.render.inventory",
    "render_config": "mxflip.render.inventory",
    "EventPrinter": "mxflip.render.operations",
    "history_json": "mxflip.render.operations",
    "operation_json": "mxflip.render.operations",
    "plan_json": "mxflip.render.operations",
    "render_history": "mxflip.render.operations",
    "render_plan": "mxflip.render.operations",
    "render_result": "mxflip.render.operations",
    "providers_json": "mxflip.render.providers",
    "render_providers": "mxflip.render.providers",
    "render_status": "mxflip.render.status",
    "status_json": "mxflip.render.status",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from mxflip.render.canary import canary_check_json as canary_check_json
    from mxflip.render.canary import canary_send_json as canary_send_json
    from mxflip.render.canary import canary_status_json as canary_status_json
    from mxflip.render.canary import render_canary_check as render_canary_check
    from mxflip.render.canary import render_canary_send as render_canary_send
    from mxflip.render.canary import render_canary_status as render_canary_status
    from mxflip.render.check import check_json as check_json
    from mxflip.render.check import readiness_json as readiness_json
    from mxflip.render.check import render_check as render_check
    from mxflip.render.common import JSON_VERSION as JSON_VERSION
    from mxflip.render.common import records_text as records_text
    from mxflip.render.common import stderr_console as stderr_console
    from mxflip.render.common import stdout_console as stdout_console
    from mxflip.render.common import when as when
    from mxflip.render.common import write_json as write_json
    from mxflip.render.drill import drill_json as drill_json
    from mxflip.render.drill import drill_junit as drill_junit
    from mxflip.render.drill import render_drill as render_drill
    from mxflip.render.inventory import config_json as config_json
    from mxflip.render.inventory import render_config as render_config
    from mxflip.render.operations import EventPrinter as EventPrinter
    from mxflip.render.operations import history_json as history_json
    from mxflip.render.operations import operation_json as operation_json
    from mxflip.render.operations import plan_json as plan_json
    from mxflip.render.operations import render_history as render_history
    from mxflip.render.operations import render_plan as render_plan
    from mxflip.render.operations import render_result as render_result
    from mxflip.render.providers import providers_json as providers_json
    from mxflip.render.providers import render_providers as render_providers
    from mxflip.render.status import render_status as render_status
    from mxflip.render.status import status_json as status_json


__getattr__ = lazy_exports(__name__, _EXPORTS)
