/*
 * How many CPUs a CNVkit task asks for: the one home of the rule (README "CPUs and
 * scheduling"). A command given -p N (coverage_conf, segment_conf) runs with the task's CPUs.
 *
 * On the local executor the job's tasks share the machine's CPUs (params.max_cpus, which the
 * local profile caps at the machine's): a task that S tasks like it may run beside asks for
 * its share, at most N. With fewer samples than CPUs each task thus gets several; with as many
 * or more each asks for one, and the scheduler runs several at once instead of one after the
 * other (a 2-CPU coverage task per sample on 2 CPUs ran the samples in turn). On a cluster
 * each task has an allocation of its own: it asks for N. Never more than CNVkit can keep busy
 * (`busy`). CNVkit's outputs do not depend on -p (tests/pipeline/test_scheduling.py).
 *
 * On a single machine a small job's per-sample stages run grouped (params.group_stages): one
 * coverage task per role and one task for every tumour's calls, where each sample is a block
 * of lines that runs beside the others in one CNVkit interpreter (bin/cnvkit_stage.py --jobs),
 * so that the job pays CNVkit's imports (~2 s) a fixed number of times, not once per sample.
 * A group asks for its samples' CPUs together, at most the machine's. A cluster keeps one task
 * per sample; coverage in chunks (params.coverage_chunk_bins) keeps a task per sample and chunk.
 */

// How many processes CNVkit's coverage -p can keep busy on a BED of `lines` lines: it runs one
// per 5,000 intervals (cnvlib/parallel.py, to_chunks).
def busyProcesses(lines) {
    return Math.max(1, (lines + 4999).intdiv(5000))
}

// Whether the job's tasks run on this machine (the process executor is `local`).
def sharedMachine() {
    return (session.config.navigate('process.executor') ?: 'local') == 'local'
}

// Whether a small job's per-sample stages run grouped: on a single machine, unless
// params.group_stages is false.
def grouped() {
    return sharedMachine() && params.group_stages
}

// How many of a task's sample blocks run at once (cnvkit_stage.py --jobs): as many as its
// `cpus` hold with -p `threads` each.
def blockJobs(cpus, threads) {
    return Math.max(1, (cpus as int).intdiv(threads as int))
}

// The CPUs of a task of `samples` samples whose lines each run with -p `threads`.
def groupCpus(threads, samples) {
    return Math.max(1, Math.min(params.max_cpus as int, (threads as int) * (samples as int)))
}

// The CPUs of one of `tasks` tasks that may run at once, whose command was given -p `wanted`
// and can keep `busy` processes busy.
def taskCpus(wanted, tasks, busy) {
    def share = sharedMachine() ? (params.max_cpus as int).intdiv(Math.max(1, tasks as int)) : wanted
    return Math.max(1, [wanted as int, busy as int, share as int].min())
}
