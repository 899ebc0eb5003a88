#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages a local run needs, only those that are missing:
# samtools, R with DNAcopy (CBS segmentation), Java 17+ and Maven (to fetch Nextflow's jars),
# Chromium (the tests open report.html in it, headless), and Slurm with MUNGE (the tests and
# `make demo PROFILE=slurm` start a one-node cluster of their own: scaffold/slurm.py).
set -euo pipefail
need=()
sbin="$PATH:/usr/sbin:/sbin"  # where the daemons are, also for users whose PATH lacks it
for tool in slurmctld slurmd sbatch squeue scancel sinfo; do
  PATH="$sbin" command -v "$tool" >/dev/null || { need+=(slurm-wlm); break; }
done
{ PATH="$sbin" command -v munged && PATH="$sbin" command -v mungekey; } >/dev/null || need+=(munge)
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
