#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages that are missing, for one of:
#   runtime (make install, make demo): samtools, R with DNAcopy (CBS segmentation), Java 17+ and
#           Maven (to fetch Nextflow's jars), python3 with venv;
#   slurm   (make demo PROFILE=slurm): Slurm with MUNGE, a one-node cluster (scaffold/slurm.py);
#   test    (make test): runtime and slurm, and Chromium (the tests open report.html in it).
# As root, apt-get runs without sudo. Without apt-get, nothing is installed: the tools already
# there are used, and the missing ones are named (exit 1 only when something is missing).
set -euo pipefail
mode=${1:-runtime}
case "$mode" in runtime | slurm | test) ;; *) echo "usage: $0 [runtime|slurm|test]" >&2; exit 2 ;; esac
need=()   # Debian packages
tools=()  # what they provide, for the message on a machine without apt-get
want() { need+=("$1"); tools+=("$2"); }
sbin="$PATH:/usr/sbin:/sbin"  # where the daemons are, also for users whose PATH lacks it

if [ "$mode" != slurm ]; then
  command -v samtools >/dev/null || want samtools samtools
  { command -v Rscript >/dev/null && Rscript -e 'suppressMessages(library(DNAcopy))' >/dev/null 2>&1; } \
    || { want r-base-core "R (Rscript)"; want r-bioc-dnacopy "the R package DNAcopy"; }
  command -v java >/dev/null || want default-jre-headless "Java 17+"
  command -v mvn >/dev/null || want maven "Maven (mvn)"
  command -v python3 >/dev/null || want python3 python3
  python3 -c 'import venv, ensurepip' 2>/dev/null || want python3-venv "python3's venv and ensurepip"
fi
if [ "$mode" != runtime ]; then
  for tool in slurmctld slurmd sbatch squeue scancel sinfo; do
    PATH="$sbin" command -v "$tool" >/dev/null || { want slurm-wlm "Slurm (slurmctld, slurmd, sbatch, ...)"; break; }
  done
  { PATH="$sbin" command -v munged && PATH="$sbin" command -v mungekey; } >/dev/null \
    || want munge "MUNGE (munged, mungekey)"
fi
if [ "$mode" = test ]; then
  { command -v chromium || command -v chromium-browser; } >/dev/null \
    || want chromium "Chromium (chromium or chromium-browser)"
fi

if ! command -v apt-get >/dev/null; then
  if [ ${#need[@]} -eq 0 ]; then
    echo "$0: no apt-get on this machine; every tool needed ($mode) is already there: using those"
    exit 0
  fi
  echo "$0: no apt-get on this machine, so nothing was installed. Missing ($mode):" >&2
  printf '  - %s\n' "${tools[@]}" >&2
  echo "Install them with this system's package manager (Debian names: ${need[*]}), then run make again." >&2
  exit 1
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing system packages ($mode): ${need[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || {
    echo "$0: not root and no sudo: as root, run apt-get install ${need[*]}" >&2; exit 1; }
  sudo="sudo"
fi
$sudo apt-get update -qq
# env, not a VAR=value prefix: sudo (env_reset) would drop that, and debconf could then prompt
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
