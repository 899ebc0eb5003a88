// Tasks that outgrow their Slurm limits on the first attempt only, run with the pipeline's
// configuration (-c nextflow.config -profile slurm): its retry rules must give them a second
// attempt with twice the time or memory, in which they fit (tests/pipeline/test_slurm.py). Their
// limits are their own, scaled by the attempt as the pipeline's are; one CPU each.

// Nextflow's sbatch asks Slurm for a USR2 30 s before the time limit (Slurm may send it up to
// a minute earlier), on which the task's wrapper ends the task with status 140.
process WARNED_AT_TIME_LIMIT {
    cpus 1
    time { 1.min * task.attempt }

    output:
    stdout

    script:
    """
    if [ ${task.attempt} -eq 1 ]; then sleep 300; fi
    echo "attempt ${task.attempt} within ${task.time}"
    """
}

// The warning replaced by a signal that does nothing to a running shell (CONT): Slurm itself ends the task at its
// time limit (SIGTERM, the job TIMEOUT), and the wrapper exits with 143.
process KILLED_AT_TIME_LIMIT {
    cpus 1
    time { 1.min * task.attempt }
    clusterOptions '--signal=B:CONT@1'

    output:
    stdout

    script:
    """
    if [ ${task.attempt} -eq 1 ]; then sleep 300; fi
    echo "attempt ${task.attempt} within ${task.time}"
    """
}

// Slurm's memory kill (OverMemoryKill) sends SIGKILL to the job's processes: no exit status when
// the shell goes first, 137 when only the python does.
process KILLED_FOR_MEMORY {
    cpus 1
    memory { 300.MB * task.attempt }

    output:
    stdout

    script:
    """
    python3 -c "data = bytearray(400 * 2**20); data[::4096] = bytes(len(data[::4096])); import time; time.sleep(3)"
    echo "attempt ${task.attempt} within ${task.memory}"
    """
}

workflow {
    WARNED_AT_TIME_LIMIT().view()
    KILLED_AT_TIME_LIMIT().view()
    KILLED_FOR_MEMORY().view()
}
