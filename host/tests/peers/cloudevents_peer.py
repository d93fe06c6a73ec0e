"""A CloudEvents client built on the PyPI `cloudevents` SDK (2.x), for the integration tests.

    python cloudevents_peer.py send --url URL --mode binary|structured --type T --source S --id I
        [--subject S] [--data JSON] [--datacontenttype CT] [--ext NAME=VALUE ...] [--prefer-reply]

Builds the event with the SDK (`cloudevents.core`), POSTs it with urllib and prints one JSON line:
    {"status": int, "headers": {lower-case name: value}, "body": text,
     "reply": null | {"specversion", "type", "source", "id", "data", "subject"?, "datacontenttype"?,
                      "time"?, "extensions"?}}
`reply` is the response parsed back by the SDK, binary or structured mode, when it carries an event.
Run by host/tests/all/peers.rs with the peers' venv python.
"""

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request

from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

FORMAT = JSONFormat()
CORE_ATTRIBUTES = {"specversion", "type", "source", "id", "subject", "datacontenttype", "time",
                   "dataschema"}


def build_event(args):
    attributes = {"type": args.type, "source": args.source, "id": args.id}
    if args.subject is not None:
        attributes["subject"] = args.subject
    for ext in args.ext:
        name, _, value = ext.partition("=")
        attributes[name] = value
    data = None
    if args.data is not None:
        data = json.loads(args.data)
        attributes["datacontenttype"] = args.datacontenttype or "application/json"
        # In binary mode the SDK serialises only objects as JSON (a str goes out unquoted, a list
        # as its Python repr): hand it any other JSON value as its exact text.
        if args.mode == "binary" and not isinstance(data, dict):
            data = args.data.encode("utf-8")
    elif args.datacontenttype:
        attributes["datacontenttype"] = args.datacontenttype
    return CloudEvent(attributes, data)


def reply_of(status_headers, body):
    """The CloudEvent in a response, parsed by the SDK, or None."""
    has_ce = any(name.startswith("ce-") for name in status_headers)
    content_type = status_headers.get("content-type", "")
    if has_ce:
        event = ce_http.from_binary(ce_http.HTTPMessage(status_headers, body), FORMAT)
        has_time = "ce-time" in status_headers
    elif content_type.split(";")[0].strip().lower() == FORMAT.CONTENT_TYPE:
        event = ce_http.from_structured(ce_http.HTTPMessage(status_headers, body), FORMAT)
        has_time = "time" in json.loads(body)
    else:
        return None
    reply = {
        "specversion": event.get_specversion(),
        "type": event.get_type(),
        "source": event.get_source(),
        "id": event.get_id(),
    }
    data = event.get_data()
    if isinstance(data, (bytes, bytearray)):
        reply["data_base64"] = base64.b64encode(data).decode("ascii")
    else:
        reply["data"] = data
    for name, getter in (("subject", event.get_subject), ("datacontenttype", event.get_datacontenttype)):
        value = getter()
        if value is not None:
            reply[name] = value
    # The SDK's CloudEvent() fills in a missing time with now: report only one that was sent.
    if has_time:
        reply["time"] = event.get_time().isoformat()
    extensions = {k: v for k, v in event.get_attributes().items() if k not in CORE_ATTRIBUTES}
    if extensions:
        reply["extensions"] = extensions
    return reply


def send(args):
    event = build_event(args)
    if args.mode == "binary":
        message = ce_http.to_binary(event, FORMAT)
    else:
        message = ce_http.to_structured(event, FORMAT)
    headers = dict(message.headers)
    if args.prefer_reply:
        headers["Prefer"] = "reply"
    # With a body but no Content-Type, urllib would add application/x-www-form-urlencoded; an
    # event without data goes out with no body (http.client still sends Content-Length: 0).
    request = urllib.request.Request(args.url, data=message.body or None, method="POST", headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=args.timeout)
    except urllib.error.HTTPError as error:
        response = error  # a 4xx/5xx still has a status, headers and a body
    with response:
        body = response.read()
        status = response.status
        response_headers = {}
        for name, value in response.headers.items():
            name = name.lower()
            response_headers[name] = response_headers[name] + ", " + value if name in response_headers else value
    reply = reply_of(response_headers, body)
    print(json.dumps({
        "status": status,
        "headers": response_headers,
        "body": body.decode("utf-8", errors="replace"),
        "reply": reply,
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    s = commands.add_parser("send", help="send one event and print the response")
    s.add_argument("--url", required=True)
    s.add_argument("--mode", choices=["binary", "structured"], required=True)
    s.add_argument("--type", required=True)
    s.add_argument("--source", required=True)
    s.add_argument("--id", required=True)
    s.add_argument("--subject")
    s.add_argument("--data", help="event data as JSON text (sets datacontenttype application/json)")
    s.add_argument("--datacontenttype")
    s.add_argument("--ext", action="append", default=[], metavar="NAME=VALUE",
                   help="an extension attribute (repeatable)")
    s.add_argument("--prefer-reply", action="store_true", help="send `Prefer: reply`")
    s.add_argument("--timeout", type=float, default=30.0, help="seconds")
    args = parser.parse_args()
    if args.command == "send":
        send(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
