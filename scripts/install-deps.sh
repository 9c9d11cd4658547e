#!/usr/bin/env bash
# Installs the Debian packages cnet and its tests need; does nothing if all are present.
#   iproute2       ip, used by tests and the lab walk-through to look at links and routes
#   iputils-ping   ping inside containers
#   util-linux     unshare and nsenter, for the tests' throwaway namespaces
#   bridge-utils   brctl, as the lab uses it
#   procps         ps, pgrep
#   bind9-dnsutils dig, to query the embedded DNS in tests and the lab
#   python3        the stand-in upstream DNS server and web servers of the tests and lab
#   curl           the lab fetches a published port
#   docker-compose, systemd  validate docker-compose.yml and the systemd units in tests
#   iptables       iptables-save / iptables-restore, which the nat service drives (nf_tables backend)
#   nftables       nft, which the nat service drives with firewall = "nftables"
#   openssl        the TLS test makes its certificates as SECURITY.md tells operators to
set -euo pipefail
packages=(iproute2 iputils-ping util-linux bridge-utils procps iptables nftables bind9-dnsutils python3 curl docker-compose systemd ca-certificates openssl)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is required (https://rustup.rs)" >&2
    exit 1
fi
