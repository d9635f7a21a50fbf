"""Turn result values into rich tables for people or JSON documents for scripts.

One module per family of commands; everything the CLI uses is re-exported here.
JSON documents are stable contracts: fields are added, never renamed or dropped.
Rich output respects NO_COLOR and falls back to plain text when stdout is not a terminal.
"""

from mxflip.render.canary import (
    canary_check_json,
    canary_send_json,
    canary_status_json,
    render_canary_check,
    render_canary_send,
    render_canary_status,
)
from mxflip.render.check import check_json, readiness_json, render_check
from mxflip.render.common import (
    JSON_VERSION,
    duration_text,
    records_text,
    stderr_console,
    stdout_console,
    when,
    write_json,
)
from mxflip.render.drill import drill_json, drill_junit, render_drill
from mxflip.render.inventory import config_json, providers_json, render_config, render_providers
from mxflip.render.operations import (
    EventPrinter,
    history_json,
    operation_json,
    plan_json,
    render_history,
    render_plan,
    render_result,
)
from mxflip.render.status import render_status, status_json

__all__ = [
    "JSON_VERSION",
    "EventPrinter",
    "canary_check_json",
    "canary_send_json",
    "canary_status_json",
    "check_json",
    "config_json",
    "drill_json",
    "drill_junit",
    "duration_text",
    "history_json",
    "operation_json",
    "plan_json",
    "providers_json",
    "readiness_json",
    "records_text",
    "render_canary_check",
    "render_canary_send",
    "render_canary_status",
    "render_check",
    "render_config",
    "render_drill",
    "render_history",
    "render_plan",
    "render_providers",
    "render_result",
    "render_status",
    "status_json",
    "stderr_console",
    "stdout_console",
    "when",
    "write_json",
]
