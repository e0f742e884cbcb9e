"""rwbody.py - Prometheus remote-write request bodies built by hand (stdlib only), for the
Python tests and scripts that send them: protobuf fields, a TimeSeries, a MetricMetadata,
and a snappy block made of literals only (no compression, but any decoder reads it).
Parts are joined once, so megabyte bodies stay cheap."""
import struct

HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
           "X-Prometheus-Remote-Write-Version": "0.1.0"}


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if not n:
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def field(num, payload, wire=2):
    if wire == 2:
        return varint(num << 3 | 2) + varint(len(payload)) + payload
    return varint(num << 3 | wire) + payload


def timeseries(labels, samples):
    """labels: dict (with __name__), in its order; samples: [(ts_ms, value)]."""
    parts = [field(1, field(1, k.encode()) + field(2, v.encode())) for k, v in labels.items()]
    parts += [field(2, field(1, struct.pack("<d", v), 1) + field(2, varint(ts & (2**64 - 1)), 0))
              for ts, v in samples]
    return field(1, b"".join(parts))


def metadata(family, mtype):
    return field(3, field(1, varint(mtype), 0) + field(2, family.encode()))


def snappy(data):
    out = [varint(len(data))]
    for i in range(0, len(data), 60):
        chunk = data[i:i + 60]
        out.append(bytes([(len(chunk) - 1) << 2]))
        out.append(chunk)
    return b"".join(out)


def write_request(*series):
    """A WriteRequest of the given TimeSeries (and metadata) parts, snappy framed."""
    return snappy(b"".join(series))
