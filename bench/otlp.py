"""How fast does ``--forward otlp+http://`` deliver? A burst into the spool, drained into a
collector, timed until the collector has every record.

Everything on loopback: ``listen --quiet --spool-dir D --forward otlp+http://...`` takes a burst
of single-datagram messages from ``bench/loadgen.py`` (well below its receive limit, so the
burst lands in the spool), and the delivery process sends it on in requests of up to 512
records. The collector is a process of this script's: an HTTP server that decodes every request
with the protocol's own message classes and counts the log records (its CPU is reported on its
own). A trial reports how long after the burst the collector had every record (``drain``), the
records delivered per second from the start of the burst to the last one, the ``listen``
tree's CPU seconds per record delivered and its peak RSS.

With ``--tree DIR`` (repeatable) the same trials run, alternated, against other checkouts of
the package, e.g. the code before a change.

Usage: ``python bench/otlp.py [--messages 200000] [--rate 100000] [--runs 3] [--tree ../base]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import listen as lb
import loadgen

COLLECTOR = r"""
import sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest, ExportLogsServiceResponse)
count = 0
lock = threading.Lock()
ok = ExportLogsServiceResponse().SerializeToString()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        global count
        body = self.rfile.read(int(self.headers["Content-Length"]))
        req = ExportLogsServiceRequest.FromString(body)
        n = sum(len(s.log_records) for r in req.resource_logs for s in r.scope_logs)
        with lock:
            count += n
        self.send_response(200)
        self.send_header("Content-Length", str(len(ok)))
        self.end_headers()
        self.wfile.write(ok)
    def do_GET(self):
        body = str(count).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


class Collector:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", COLLECTOR], stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def count(self) -> int:
        import http.client

        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request("GET", "/")
        n = int(c.getresponse().read())
        c.close()
        return n

    def stop(self) -> float:
        cpu = lb.tree_cpu(self.proc.pid)
        lb.stop_process(self.proc, signal.SIGTERM, 10)  # type: ignore[arg-type]
        return cpu


def trial(name: str, tree: Path | None, messages: int, rate: int, tmp: Path) -> dict[str, Any]:
    col = Collector()
    spool = Path(tempfile.mkdtemp(prefix="spool-", dir=tmp))
    out = tmp / f"{name}.out"
    argv = [*lb.netconsolectl_argv(tree), "listen", "--port", "0", "--quiet", "--spool-dir",
            str(spool), "--forward", f"otlp+http://127.0.0.1:{col.port}/v1/logs"]
    rx = lb.Receiver(name, argv, out, port=None)
    cpu0 = lb.tree_cpu(rx.proc.pid)
    start = time.monotonic()
    res = loadgen.run(("127.0.0.1", rx.port), "single", rate, messages / rate, procs=1)
    sent = int(res["messages"])  # type: ignore[call-overload]
    sent_at = time.monotonic()
    got = 0
    while time.monotonic() - sent_at < 600:
        got = col.count()
        if got >= sent:
            break
        time.sleep(0.05)
    done = time.monotonic()
    drain = done - sent_at
    cpu, hwm = rx.stop()
    col_cpu = col.stop()
    shutil.rmtree(spool, ignore_errors=True)
    out.unlink()
    t = {"tree": name, "sent": sent, "delivered": got, "drain_s": round(drain, 2),
         "cpu_s": round(cpu - cpu0, 2), "us_per_record": round((cpu - cpu0) / max(got, 1) * 1e6,
                                                                  1),
         "records_per_s": round(got / (done - start)), "peak_rss_mib": round(hwm, 1),
         "collector_cpu_s": round(col_cpu, 2)}
    print(f"  {name:16s} delivered {got} of {sent}, the last {t['drain_s']:6.2f} s after the "
          f"burst ({t['records_per_s']}/s from its start), listen cpu {t['cpu_s']:5.2f} s "
          f"({t['us_per_record']} us/record), rss {t['peak_rss_mib']} MiB, "
          f"collector cpu {t['collector_cpu_s']} s", flush=True)
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=200_000, help="messages in the burst")
    ap.add_argument("--rate", type=int, default=100_000, help="burst rate, messages/s")
    ap.add_argument("--runs", type=int, default=3, help="trials per tree, alternated")
    ap.add_argument("--tree", action="append", default=[],
                    help="also run against the package in this checkout (repeatable)")
    ap.add_argument("--json", type=Path, help="write all results here")
    args = ap.parse_args()
    trees: dict[str, Path | None] = {"this tree": None}
    trees.update({f"@{Path(t).name}": Path(t).resolve() for t in args.tree})
    results: dict[str, Any] = {"context_before": lb.context(), "trials": []}
    with tempfile.TemporaryDirectory(prefix="otlp-bench-") as d:
        for _ in range(args.runs):
            for name, path in trees.items():
                results["trials"].append(trial(name, path, args.messages, args.rate, Path(d)))
    print("\nmedian over the runs:")
    for name in trees:
        ts = sorted((t for t in results["trials"] if t["tree"] == name),
                    key=lambda t: t["drain_s"])
        m = ts[len(ts) // 2]
        print(f"  {name:16s} {m['records_per_s']:8d} records/s, {m['us_per_record']} us of "
              f"listen CPU per record, drain {m['drain_s']} s, peak RSS {m['peak_rss_mib']} MiB")
    results["context_after"] = lb.context()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
