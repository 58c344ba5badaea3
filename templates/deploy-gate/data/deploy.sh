#!/bin/sh
# Simulated deployment: records what would be deployed. Replace with your real deploy command.
service="$1"
version="$2"
mkdir -p out
printf '%s deployed %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$service" "$version" >> out/deployments.log
echo "deployed $service $version"
