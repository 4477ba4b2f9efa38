#!/usr/bin/env python3
"""Reads a DPDK process's ethdev counters through its telemetry socket
(an oracle independent of the app's own counters).

  telemetry.py PREFIX stats PORT              print the port's stats as JSON
  telemetry.py PREFIX rate PORT SECS [FIELD]  packets/s of FIELD (opackets) over SECS
  telemetry.py PREFIX wait [SECS]             wait until the socket answers
  telemetry.py PREFIX until FIELD N [SECS]    wait until /vfp/stats FIELD >= N
  telemetry.py PREFIX cycles SECS             pmd-app busy cycles per packet over SECS
  telemetry.py PREFIX cps FROM TO [SECS]      flows created per second between
                                              flows_created FROM and TO
  telemetry.py PREFIX cmd /some/command       print any command's reply
"""
import json
import socket
import sys
import time


def connect(prefix):
    path = "/var/run/dpdk/%s/dpdk_telemetry.v2" % prefix
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    s.recv(4096)  # greeting: version, pid, max_output_len
    return s


def query(s, cmd):
    s.send(cmd.encode())
    return json.loads(s.recv(1 << 20).decode())


def main():
    prefix, what = sys.argv[1], sys.argv[2]
    if what == "wait":
        limit = float(sys.argv[3]) if len(sys.argv) > 3 else 30
        end = time.time() + limit
        while time.time() < end:
            try:
                connect(prefix).close()
                return 0
            except OSError:
                time.sleep(0.05)
        print("telemetry socket of %s did not come up" % prefix, file=sys.stderr)
        return 1
    s = connect(prefix)
    if what == "stats":
        print(json.dumps(query(s, "/ethdev/stats,%s" % sys.argv[3])["/ethdev/stats"]))
    elif what == "cmd":
        print(json.dumps(query(s, sys.argv[3])))
    elif what == "until":
        field, n = sys.argv[3], int(sys.argv[4])
        end = time.time() + (float(sys.argv[5]) if len(sys.argv) > 5 else 60)
        while True:
            v = (query(s, "/vfp/stats").get("/vfp/stats") or {}).get(field, 0)
            if v >= n:
                return 0
            if time.time() > end:
                print("%s stayed at %d < %d" % (field, v, n), file=sys.stderr)
                return 1
            time.sleep(0.01)
    elif what == "cycles":
        a = query(s, "/vfp/stats")["/vfp/stats"]
        time.sleep(float(sys.argv[3]))
        b = query(s, "/vfp/stats")["/vfp/stats"]
        dp = b["busy_packets"] - a["busy_packets"]
        print("%.1f" % ((b["busy_cycles"] - a["busy_cycles"]) / dp if dp else 0))
    elif what == "cps":
        lo, hi = int(sys.argv[3]), int(sys.argv[4])
        end = time.time() + (float(sys.argv[5]) if len(sys.argv) > 5 else 60)
        t_lo = None
        while time.time() < end:
            v = (query(s, "/vfp/stats").get("/vfp/stats") or {}).get("flows_created", 0)
            now = time.time()
            if t_lo is None and v >= lo:
                t_lo, v_lo = now, v
            if t_lo is not None and v >= hi:
                print("%.0f" % ((v - v_lo) / (now - t_lo)))
                return 0
            time.sleep(0.002)
        print("flows_created did not reach %d" % hi, file=sys.stderr)
        return 1
    elif what == "rate":
        port, secs = sys.argv[3], float(sys.argv[4])
        field = sys.argv[5] if len(sys.argv) > 5 else "opackets"
        a = query(s, "/ethdev/stats,%s" % port)["/ethdev/stats"][field]
        t0 = time.time()
        time.sleep(secs)
        b = query(s, "/ethdev/stats,%s" % port)["/ethdev/stats"][field]
        print("%.0f" % ((b - a) / (time.time() - t0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
