#!/usr/bin/python3
"""A tiny OTLP/gRPC trace receiver for bench/control.sh: serves
opentelemetry.proto.collector.trace.v1.TraceService/Export (what cnet's exporter, tonic
through opentelemetry-otlp, sends; see services/common/src/telemetry.rs) and appends one
JSON line per span to a file:

    {"service": "cnet-gateway", "name": "...", "trace": hex, "span": hex, "parent": hex,
     "start": ns, "end": ns, "attrs": {"container": "t3", ...}}

    otlp_receiver.py ADDRESS OUT_JSONL      e.g. 127.0.0.1:4317 /tmp/x/spans.jsonl

Needs Debian's python3-grpcio only: the messages are decoded here from the protobuf wire
format (the few fields used: resource attributes, span ids, name, times, string and
integer attributes), as tests/tests/observability.rs reads them with opentelemetry-proto.
"""

import json
import struct
import sys
import threading
from concurrent import futures

import grpc

METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def fields(buf: bytes):
    """(field number, wire type, value) of each field of one message."""
    i, n = 0, len(buf)
    while i < n:
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 1:
            value, i = struct.unpack_from("<Q", buf, i)[0], i + 8
        elif wire == 2:
            length, i = varint(buf, i)
            value, i = buf[i : i + length], i + length
        elif wire == 5:
            value, i = struct.unpack_from("<I", buf, i)[0], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value


def varint(buf: bytes, i: int):
    shift = result = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, i
        shift += 7


def any_value(buf: bytes):
    for number, _, value in fields(buf):
        if number == 1:       # string_value
            return value.decode(errors="replace")
        if number == 2:       # bool_value
            return bool(value)
        if number == 3:       # int_value
            return value - (1 << 64) if value >= 1 << 63 else value
        if number == 4:       # double_value
            return struct.unpack("<d", struct.pack("<Q", value))[0]
    return None


def key_value(buf: bytes):
    key, value = "", None
    for number, _, raw in fields(buf):
        if number == 1:
            key = raw.decode(errors="replace")
        elif number == 2:
            value = any_value(raw)
    return key, value


def spans_of(request: bytes):
    for number, _, resource_spans in fields(request):
        if number != 1:
            continue
        service, scope_spans = "", []
        for n2, _, raw in fields(resource_spans):
            if n2 == 1:       # resource
                for n3, _, attr in fields(raw):
                    if n3 == 1:
                        key, value = key_value(attr)
                        if key == "service.name":
                            service = value
            elif n2 == 2:
                scope_spans.append(raw)
        for scope in scope_spans:
            for n3, _, span in fields(scope):
                if n3 != 2:
                    continue
                out = {"service": service, "trace": "", "span": "", "parent": "", "name": "",
                       "start": 0, "end": 0, "attrs": {}}
                for n4, _, value in fields(span):
                    if n4 == 1:
                        out["trace"] = value.hex()
                    elif n4 == 2:
                        out["span"] = value.hex()
                    elif n4 == 4:
                        out["parent"] = value.hex()
                    elif n4 == 5:
                        out["name"] = value.decode(errors="replace")
                    elif n4 == 7:
                        out["start"] = value
                    elif n4 == 8:
                        out["end"] = value
                    elif n4 == 9:
                        key, attr = key_value(value)
                        out["attrs"][key] = attr
                yield out


def main():
    address, path = sys.argv[1], sys.argv[2]
    lock = threading.Lock()
    out = open(path, "a")

    def export(request: bytes, context) -> bytes:
        lines = [json.dumps(span) for span in spans_of(request)]
        with lock:
            out.write("".join(line + "\n" for line in lines))
            out.flush()
        return b""   # ExportTraceServiceResponse{} (no partial_success)

    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(export)},   # bytes in, bytes out
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                         options=[("grpc.max_receive_message_length", 64 << 20)])
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(address)
    server.start()
    print(f"listening on {address}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
