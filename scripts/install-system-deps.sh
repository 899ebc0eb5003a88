#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages a local run needs, only those that are missing:
# samtools, R with DNAcopy (CBS segmentation), Java 17+ and Maven (to fetch Nextflow's jars), and
# Chromium (the tests open report.html in it, headless).
set -euo pipefail
need=()
command -v samtools >/dev/null || need+=(samtools)
{ command -v Rscript >/dev/null && Rscript -e 'suppressMessages(library(DNAcopy))' >/dev/null 2>&1; } \
  || need+=(r-base-core r-bioc-dnacopy)
command -v java >/dev/null || need+=(default-jre-headless)
command -v mvn >/dev/null || need+=(maven)
{ command -v chromium || command -v chromium-browser; } >/dev/null || need+=(chromium)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing system packages: ${need[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
