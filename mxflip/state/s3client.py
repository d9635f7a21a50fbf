"""The botocore S3 client of the shared state backend, built lean.

Building a stock botocore S3 client costs about a quarter second of CPU per command, most
of it reading data files that mxflip needs a sliver of: the whole S3 service model (one
megabyte of JSON, for four operations), the endpoint list of every AWS service, and a scan
of every service folder to check that ``s3`` exists. A command that runs for half a second
against a nearby bucket pays that in every invocation.

So the data botocore's loader read the first time (its own per-instance cache) is kept in
a small file in the state folder — the S3 model trimmed to the operations mxflip calls and
the endpoint list trimmed to S3 — and handed to the next command's loader. The file is
keyed by the botocore version and its data folder, so an upgrade rebuilds it; a missing
or damaged file only costs the slow path once. The client itself is stock botocore: the
same credential chain, signing, endpoint rules and errors (the endpoint rules without the
parameters no rule reads, so that requests to one bucket share one resolved endpoint).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

from mxflip import collector
from mxflip.files import atomic_write, ensure_private_folder, read_bytes

log = logging.getLogger(__name__)

#: The S3 operations the backend calls (see ``mxflip.state.s3``): the trimmed model keeps
#: only these and the shapes they reference.
OPERATIONS = ("GetObject", "HeadObject", "PutObject", "DeleteObject", "ListObjectsV2")

#: The shape of each object in a listing (ListObjectsV2's Contents): trimmed to its Key.
LISTED_SHAPE = "Object"

#: The rules botocore derives each request's endpoint from.
RULESET = "endpoint-rule-set-1"

#: A parameter named in a rule's string template: "{Bucket}", "{url#scheme}".
_TEMPLATE_REFERENCE = re.compile(r"\{([A-Za-z0-9_]+)[}#]")

_FORMAT = 3


def make_client(settings: Any, *, home: Path | None) -> Any:
    """A botocore S3 client for ``settings`` (``[state]``); its loader data is kept in
    ``home`` (None: not kept)."""
    first_import = "botocore.session" not in sys.modules
    import botocore
    import botocore.loaders
    import botocore.session
    from botocore.config import Config as BotoConfig

    if first_import:
        # The import just made some 30,000 objects (botocore's modules, classes, data)
        # that live as long as the process. With the command's young generation
        # (mxflip.collector) they would push the collector into a pass that walks them
        # all (~5-10 ms, on the way to the first state call) to free nothing.
        collector.keep_what_exists()
    session = s3_session()
    loader = botocore.loaders.create_loader(session.get_config_variable("data_path"))
    path = _data_path(home, loader, botocore.__version__) if home is not None else None
    preloaded = path is not None and _preload(loader, path)
    if not preloaded:  # kept data holds the ruleset trimmed already
        _trim_ruleset(loader)
    session.register_component("data_loader", loader)
    # Timestamps stay strings: mxflip reads none, and parsing every LastModified of a
    # journal listing (dateutil, per key) costs more than the request itself.
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    config = BotoConfig(
        retries={"total_max_attempts": 1},  # retried, bounded, by mxflip.retry
        connect_timeout=5,
        read_timeout=15,
        s3={"addressing_style": "path"} if settings.endpoint_url else {},
        # Small JSON bodies over TLS: no CRC32 computed and checked per call (what
        # botocore >= 1.36 does by default), which S3-compatible stores may not support.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client = session.create_client(
        "s3",
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        config=config,
    )
    if path is not None and not preloaded:
        _keep(loader, path)
    # botocore sends every PutObject body with "Expect: 100-continue" (it turns bytes into
    # a file, and a file always gets one), so each write waits for the store's "100
    # Continue" before sending its body: one more round trip per record. mxflip's bodies
    # are small JSON documents, sent with their headers. Registered last on the S3
    # before-call event, after botocore's own handler; through the public event system,
    # so a botocore that stops adding the header only makes this a no-op.
    client.meta.events.register_last("before-call.s3", send_body_with_headers)
    return client


def s3_session() -> Any:
    """A stock botocore session with the built-in handlers an S3 client can fire.

    ``botocore.session.get_session()`` registers all of ``botocore.handlers.
    BUILTIN_HANDLERS`` (some 130, each checked with ``inspect`` on registration) and most
    are for other services (EC2, RDS, Glacier, ...) or their documentation: an S3 client
    never emits their events, yet every emit walks a larger table. The session is built
    without them and given, in botocore's order and with botocore's first/last
    placement, every handler whose event names no service or S3 (or any service).
    """
    import botocore.handlers
    import botocore.session

    session = botocore.session.Session(include_builtin_handlers=False)
    events = session.get_component("event_emitter")
    for spec in botocore.handlers.BUILTIN_HANDLERS:
        event, handler = spec[0], spec[1]
        if not fires_for_s3(event):
            continue
        placement = spec[2] if len(spec) > 2 else None
        if placement is botocore.handlers.REGISTER_FIRST:
            events.register_first(event, handler)
        elif placement is botocore.handlers.REGISTER_LAST:
            events.register_last(event, handler)
        else:
            session.register(event, handler)
    return session


def fires_for_s3(event: str) -> bool:
    """Whether a handler registered for ``event`` can be called by an S3 client: the
    event names no service ("before-call"), any ("before-parse.*"), or S3. Documentation
    events name the service one place later ("docs.<section>.<service>...")."""
    parts = event.split(".")
    where = 2 if parts[0] == "docs" else 1
    return len(parts) <= where or parts[where] in ("*", "s3")


def _trim_ruleset(loader: Any) -> None:
    """Trim the S3 endpoint ruleset in ``loader``'s cache, where the client will read it
    (see :func:`drop_unread_parameters`). Loaded as botocore's client builder loads it, so
    it is the same cache entry; a botocore that asks differently only misses the saving."""
    from botocore.exceptions import BotoCoreError

    try:
        ruleset = loader.load_service_model("s3", RULESET, api_version=None)
    except (BotoCoreError, OSError, ValueError) as exc:  # the client build reports it
        log.debug("cannot read the S3 endpoint rules ahead: %s", exc)
        return
    if isinstance(ruleset, dict):
        drop_unread_parameters(ruleset)


def drop_unread_parameters(ruleset: dict[str, Any]) -> None:
    """Remove from ``ruleset`` (in place) the parameters none of its rules reads.

    botocore resolves each request's endpoint through the ruleset and remembers the answer
    per set of parameter values (an LRU cache). S3's ruleset declares ``Key``, ``Prefix``
    and ``CopySource`` as parameters, filled from every request's object key, though no
    rule reads them (botocore 1.43): so every journal record written or read (a new key
    each) missed the cache and ran the whole ruleset again (about 0.1 ms of CPU a request:
    the fault matrix's S3 half spent 12.6 s of CPU with it, 12.2 s without).
    A parameter no rule references cannot change the endpoint, so dropping it changes no
    answer; it only lets requests to one bucket share one. References are looked for both
    as ``{"ref": NAME}`` and in string templates; a ruleset without rules is left alone."""
    parameters, rules = ruleset.get("parameters"), ruleset.get("rules")
    if not isinstance(parameters, dict) or not rules:
        return
    read = _referenced(rules)
    for name in [n for n in parameters if n not in read]:
        del parameters[name]


def _referenced(rules: Any) -> set[str]:
    names: set[str] = set()
    todo = [rules]
    while todo:  # bounded: each node of the (finite, acyclic) JSON is visited once
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("ref")
            if isinstance(ref, str):
                names.add(ref)
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
        elif isinstance(node, str) and "{" in node:
            names.update(_TEMPLATE_REFERENCE.findall(node))
    return names


def send_body_with_headers(params: dict[str, Any], **_: Any) -> None:
    """botocore ``before-call`` handler: no ``Expect: 100-continue`` on a request."""
    headers = params.get("headers")
    if isinstance(headers, dict):
        headers.pop("Expect", None)


def _data_path(home: Path, loader: Any, version: str) -> Path:
    # The search paths name the data folders in use (botocore's own, ~/.aws/models, a
    # configured data_path): another set of data is another file.
    where = "|".join(
        [str(_FORMAT), version, *OPERATIONS, *map(str, getattr(loader, "search_paths", []))]
    )
    return home / f"s3-client-{hashlib.sha256(where.encode()).hexdigest()[:12]}.json"


def _preload(loader: Any, path: Path) -> bool:
    """Fill ``loader``'s cache from ``path``; False when there is nothing usable."""
    try:
        doc = json.loads(read_bytes(path))
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            return False
        entries = {}
        for key, value in doc["entries"]:
            key = tuple(key)
            # load_data_with_path returns (data, path): JSON made it a list.
            entries[key] = tuple(value) if key[0] == "load_data_with_path" else value
        cache = loader._cache
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        if not isinstance(exc, FileNotFoundError):
            log.debug("ignoring the S3 client data %s: %s", path, exc)
        return False
    if not isinstance(cache, dict):
        return False
    cache.update(entries)
    return True


def _keep(loader: Any, path: Path) -> None:
    """Write what ``loader`` read (trimmed) for the next command; only a cache."""
    try:
        entries = []
        for key, value in loader._cache.items():
            if key[0] == "load_data_with_path" and "/" in key[1]:
                continue  # a service's raw file: reached only through load_service_model
            entries.append([list(key), _trim(key, value)])
        text = json.dumps({"format": _FORMAT, "entries": entries}, separators=(",", ":"))
        ensure_private_folder(path.parent)
        atomic_write(path, text.encode(), mode=0o600)
    except (OSError, TypeError, ValueError, AttributeError) as exc:
        log.debug("cannot keep the S3 client data %s: %s", path, exc)


def _trim(key: tuple[Any, ...], value: Any) -> Any:
    if key[:3] == ("load_service_model", "s3", "service-2") and isinstance(value, dict):
        return trim_model(value)
    if key[:2] == ("load_data_with_path", "endpoints") and isinstance(value, tuple):
        return [trim_endpoints(value[0]), value[1]]
    return value


def trim_model(model: dict[str, Any]) -> dict[str, Any]:
    """The S3 service model with only :data:`OPERATIONS`, the shapes they reach, and no
    documentation strings."""
    operations = {n: op for n, op in model.get("operations", {}).items() if n in OPERATIONS}
    shapes = model.get("shapes", {})
    keep: set[str] = set()
    todo = [
        ref["shape"]
        for op in operations.values()
        for ref in (op.get("input"), op.get("output"), *op.get("errors", []))
        if isinstance(ref, dict) and "shape" in ref
    ]
    for _ in range(len(shapes) + len(todo)):  # bounded: each shape is visited once
        if not todo:
            break
        name = todo.pop()
        if name in keep or name not in shapes:
            continue
        keep.add(name)
        todo.extend(_references(shapes[name]))
    # Documentation strings go from operations and shapes only: botocore reads them
    # elsewhere (client context parameters require theirs).
    kept = _undocumented({n: s for n, s in shapes.items() if n in keep})
    listed = kept.get(LISTED_SHAPE)
    if isinstance(listed, dict) and "Key" in listed.get("members", {}):
        # A journal listing names hundreds of objects, and botocore parses every member
        # of each (dates, sizes, checksums, owner): a quarter of the listing's CPU (8.9 ms
        # instead of 6.7 for 420 objects). mxflip reads their keys only; a member the
        # model lacks is skipped by the parser, never an error.
        kept[LISTED_SHAPE] = {**listed, "members": {"Key": listed["members"]["Key"]}}
    return {**model, "operations": _undocumented(operations), "shapes": kept}


def _references(shape: dict[str, Any]) -> list[str]:
    refs = [shape.get("member"), shape.get("key"), shape.get("value")]
    refs.extend(shape.get("members", {}).values())
    return [r["shape"] for r in refs if isinstance(r, dict) and "shape" in r]


def _undocumented(value: Any) -> Any:
    if isinstance(value, dict):  # "documentation" is never a member name in the S3 model
        return {k: _undocumented(v) for k, v in value.items() if k != "documentation"}
    if isinstance(value, list):
        return [_undocumented(v) for v in value]
    return value


def trim_endpoints(endpoints: Any) -> Any:
    """botocore's endpoint list with only the S3 services in each partition."""
    with contextlib.suppress(AttributeError, TypeError):
        return {
            **endpoints,
            "partitions": [
                {
                    **p,
                    "services": {
                        k: v for k, v in p.get("services", {}).items() if k.startswith("s3")
                    },
                }
                for p in endpoints["partitions"]
            ],
        }
    return endpoints
