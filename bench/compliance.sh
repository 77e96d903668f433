#!/usr/bin/env bash
# Times the 3-2-1-1-0 checker (docs/compliance.md, "Performance"): a catalog in a temporary
# directory is filled with JOBS synthetic jobs (default 10000) on 3 targets each, then the facts
# are loaded and every job evaluated, three rounds. The catalog is deleted afterwards.
# Usage: bench/compliance.sh [JOBS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CARGO_INCREMENTAL=0 cargo run --quiet --release -p bmsd --example compliance_bench -- "${1:-10000}"
