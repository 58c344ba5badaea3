#!/bin/sh
# Simulated pre-deployment checks for one service: prints one JSON object on stdout.
# Replace the body with your real checks (test suite, migrations dry-run, health of the target …).
service="$1"
version="$2"
pending=$(grep -c '^migration:' data/changes.txt || true)
printf '{"service": "%s", "version": "%s", "tests": "passed", "pending_migrations": %s, "disk_free_gb": 42}\n' \
  "$service" "$version" "$pending"
