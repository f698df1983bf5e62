#!/usr/bin/env python3
"""ratios.py REPORT.md...: ours / HAProxy from peer-harness reports, per scenario.

Reads the "Results" table (median req/s) and the "Ratios" table (median CPU µs/req) of each
report and prints, per report, S1–S3 throughput and CPU ratios of ours to HAProxy measured in
the same run, plus S4 origin hits. Targets (bench/RESULTS.md): S1 ≥ 2.5× req/s and ≤ 0.35×
CPU; S2 and S3 ≥ 1.0× req/s and ≤ 0.6× CPU; S4 one origin hit.
"""
import sys


def rows(text, first_header):
    """Rows of the Markdown table whose header starts with `first_header`, keyed by peer."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(first_header):
            head = [c.strip() for c in line.strip("|").split("|")]
            out = {}
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                cells = [c.strip() for c in row.strip("|").split("|")]
                out[cells[0]] = dict(zip(head, cells))
            return out
    return {}


def pick(table, prefix):
    return next((v for k, v in table.items() if k.startswith(prefix)), None)


for path in sys.argv[1:]:
    text = open(path).read()
    res, rat = rows(text, "| peer | correctness"), rows(text, "| peer | S1 / ceiling")
    ours, hap = pick(res, "ours"), pick(res, "HAProxy")
    ours_c, hap_c = pick(rat, "ours"), pick(rat, "HAProxy")
    if not (ours and hap and ours_c and hap_c):
        print(f"{path}: no ours/HAProxy rows")
        continue
    parts = []
    for s in ("S1", "S2", "S3"):
        rps = float(ours[f"{s} req/s"]) / float(hap[f"{s} req/s"])
        cpu = float(ours_c[f"CPU µs/req {s}"]) / float(hap_c[f"CPU µs/req {s}"])
        parts.append(f"{s} {rps:.2f}× req/s, {cpu:.3f}× CPU")
    parts.append(f"S4 hits {ours['S4 origin hits']}, p50 {ours['S4 p50']} ms")
    print(f"{path}: " + "; ".join(parts))
