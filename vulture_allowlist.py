"""Names vulture reports as unused that are used (`vulture` reads this file with the code).

Click commands and pydantic validators are ignored by decorator in pyproject.toml
([tool.vulture]); what is left is named here, with why. Entries marked DEAD are dead code
in modules other work was rewriting at the same time (issue 11); remove them there.
"""

# ruff: noqa: B018
# mypy: ignore-errors

from vulture.whitelist_utils import Whitelist  # type: ignore[import-not-found]

_ = Whitelist()

# Module ``__getattr__``: Python calls it for the lazy re-exports (PEP 562).
_.__getattr__  # mxflip/__init__.py, mxflip/testing/__init__.py

# click calls these: ParamType.convert, a command's help text set after definition, and
# the commands the group loads by name from mxflip.cli.COMMANDS that no decorator marks:
# `failover`/`failback` (made by _switch_command) and the watch module's `approve`.
_.convert  # mxflip/cli.py Duration
_.help  # mxflip/cli_change.py _switch_command
_.failback  # mxflip/cli_change.py
_.approve  # mxflip/watch/cli.py
_.get_command  # mxflip/cli.py MxflipGroup (the lazy loading)
_.format_commands  # mxflip/cli.py MxflipGroup

# asyncio calls the DatagramProtocol callbacks.

# socketserver reads daemon_threads; aiosmtpd calls the handle_* hooks.
_.daemon_threads  # mxflip/sandbox.py
_.handle_RCPT  # mxflip/sandbox.py
_.handle_DATA  # mxflip/sandbox.py

# Public test API, used by the tests of the core and of every adapter.
_.ProviderContract  # mxflip/testing/contract.py
_.ZoneListingContract  # mxflip/testing/contract.py
_.drop  # mxflip/testing/memory.py MemoryStore
_.add_zone  # mxflip/testing/memory.py MemoryStore
_.BOUNDARIES  # mxflip/rollout.py: the failpoint names, checked by tests/test_engine_faults.py

# The Cloudflare SDK reads these: cleared so it never authenticates with anything but the
# token (it would prefer CLOUDFLARE_API_KEY / CLOUDFLARE_EMAIL from the environment).
_.api_key  # providers/cloudflare/mxflip_cloudflare/_client.py
_.api_email  # providers/cloudflare/mxflip_cloudflare/_client.py
_.user_service_key  # providers/cloudflare/mxflip_cloudflare/_client.py

# Data kept for readers: an MTA-STS policy's max_age (parsed, part of the policy) and the
# INFO severity of probe findings.
_.max_age  # mxflip/mailpolicy.py MTASTSPolicy
_.INFO  # mxflip/findings.py Severity

_.switch_readiness  # mxflip/engine.py: one domain's flags (tests, API); status uses the _all form

# DEAD, in modules being rewritten by other work in issue 11 (left for them to remove):
_.OUTCOMES  # mxflip/journal.py: a tuple nothing reads
_.command_line  # mxflip/journal.py: nothing calls it (the CLI builds its own)
_.ACTIVE_STATES  # mxflip/observe.py: a tuple nothing reads
_.exit_verdict  # mxflip/readiness.py: nothing calls it

# Shared state API for the watcher (issue 16 → `mxflip watch`): leader election between
# watchers; used by tests/test_state_s3.py and tests/test_state_backends.py until then.
_.Leader  # mxflip/state/lease.py
_.resign  # mxflip/state/lease.py Leader

# Found after the lifecycle merge (issue 13), left to its owner: a signal handler's
# (signum, frame) signature; Operation.seq, the journal position set when parsing.
_.signum  # mxflip/cli.py _on_sigterm
_.frame  # mxflip/cli.py _on_sigterm
_.seq  # mxflip/journal.py Operation

# click reads a parameter's completer from this attribute (mxflip/completion.py sets it on
# the DOMAIN, OPERATION_ID and --provider parameters of the existing commands).
_._custom_shell_complete  # mxflip/completion.py

# prometheus-client calls Collector.collect; http.server calls do_GET and log_message.
_.collect  # mxflip/canary/metrics.py CanaryCollector
_.do_GET  # mxflip/watch/server.py
_.log_message  # mxflip/watch/server.py

# For `mxflip doctor` (onboarding): a test alert through every configured channel.
_.send_test_notification  # mxflip/watch/alerts.py

# pydantic's schema builder calls get_plugins() on the loader module mxflip stands in for
# when no pydantic plugin is installed (start-up).
_.get_plugins  # mxflip/entrypoints.py skip_pydantic_plugin_scan
