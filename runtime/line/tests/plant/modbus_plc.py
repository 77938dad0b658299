"""A PLC over Modbus TCP, played by pymodbus (an independent client): for each part it waits for
READY, writes 1 to the trigger coil, waits for the result counter to move, and reads the verdict,
the part id and the score. One JSON line per part on standard output; the end is a line
{"done": true, ...} with what it read last. Register map: the README's *Modbus TCP* table.

usage: modbus_plc.py HOST PORT PARTS
"""

import json
import struct
import sys
import time

from pymodbus.client import ModbusTcpClient

READY, BUSY, RESULT_VALID, OK, NG, ERROR = (1 << i for i in range(6))


def words_to_u32(hi, lo):
    return (hi << 16) | lo


def words_to_f32(hi, lo):
    return struct.unpack(">f", struct.pack(">HH", hi, lo))[0]


def main():
    host, port, parts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    client = ModbusTcpClient(host, port=port, timeout=5)
    if not client.connect():
        sys.exit(f"modbus_plc: cannot connect to {host}:{port}")

    def registers():
        r = client.read_input_registers(0, count=27)
        if r.isError():
            sys.exit(f"modbus_plc: reading the input registers failed: {r}")
        return r.registers

    def wait(what, until, timeout=60.0):
        start = time.monotonic()
        while True:
            r = registers()
            if until(r):
                return r
            if time.monotonic() - start > timeout:
                sys.exit(f"modbus_plc: timed out waiting for {what}: {r}")
            time.sleep(0.0005)

    # A wrong request is an exception, and changes nothing.
    bad = client.read_input_registers(26, count=2)
    assert bad.isError(), "reading past the map is an exception"
    holding = client.read_holding_registers(0, count=27)
    assert not holding.isError() and len(holding.registers) == 27

    for _ in range(parts):
        r = wait("READY", lambda r: r[0] & READY)
        before = words_to_u32(r[3], r[4])
        w = client.write_coil(0, True)
        if w.isError():
            sys.exit(f"modbus_plc: the trigger coil write failed: {w}")
        r = wait("a result", lambda r: words_to_u32(r[3], r[4]) != before)
        verdict = {1: "OK", 2: "NG"}.get(r[2])
        score = words_to_f32(r[7], r[8])
        print(json.dumps({
            "part": words_to_u32(r[5], r[6]),
            "verdict": verdict,
            "score": None if score != score else score,
            "results": words_to_u32(r[3], r[4]),
        }), flush=True)
    r = registers()
    print(json.dumps({"done": True, "ok": words_to_u32(r[11], r[12]), "ng": words_to_u32(r[13], r[14]),
                      "triggers": words_to_u32(r[15], r[16]), "missed": words_to_u32(r[17], r[18])}), flush=True)
    client.close()


if __name__ == "__main__":
    main()
