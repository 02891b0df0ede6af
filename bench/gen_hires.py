#!/usr/bin/env python3
"""Writes N hires as HR's CSV export, with non-ASCII names: gen_hires.py N OUT.csv"""
import csv, sys

GIVEN = ["Zoë", "Seán", "Ana", "Björn", "Chloé", "Dmitri", "Élise", "Fatima", "Gökhan", "Håkon", "李", "Øystein"]
FAMILY = ["Müller", "O'Brien", "Nguyễn", "Søren", "García", "Łukasz", "雷", "Dubois"]

n, out = int(sys.argv[1]), sys.argv[2]
with open(out, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["id", "given_name", "family_name", "work_email", "manager", "manager_email",
                "department", "start_date", "end_date", "time_zone"])
    for i in range(n):
        w.writerow([f"B{i:06d}", GIVEN[i % len(GIVEN)], f"{FAMILY[i % len(FAMILY)]}-{i}",
                    f"b{i}@example.org", "Mia Manager", "mia@example.org", "Research",
                    "2026-12-07", "2027-12-31", "Europe/Berlin"])
