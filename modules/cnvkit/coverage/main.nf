// Samples' read depths in their target and antitarget bins, in one interpreter
// (bin/cnvkit_stage.py): for each sample, target then antitarget. A task covers one sample,
// or on a single machine a small job's samples of one role together (subworkflows/local/
// coverage), each sample a block of its own that runs beside the others (--jobs), so that
// CNVkit's imports are paid once per group. Each line runs with -p `threads`. With a reference
// built earlier the bins are its own, taken from it first as `batch -r` does (so the task need
// not wait for CNVKIT_PREPARE, which publishes the same regions). A CRAM is read with the job's
// FASTA. Options: task.ext.args -> every coverage line (coverage_conf).
// A big job's coverage runs as one task per (sample, chunk of whole chromosomes), this module
// included as CNVKIT_COVERAGE_CHUNK: `chunk` names the chunk, whose BEDs are given, and its
// files are merged per sample (CNVKIT_COVERAGE_MERGE).
include { blockJobs } from '../../../subworkflows/local/cpus'

process CNVKIT_COVERAGE {
    tag "${metas*.id.join(' ')}${chunk ? " chunk ${chunk}" : ''}"
    conda "bioconda::cnvkit=0.9.14"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://community-cr-prod.seqera.io/docker/registry/v2/blobs/sha256/39/3935f8d7507f85fd20e073f0625bb6bdff8aa1b6044f4bbb720c9a8063ea0390/data' :
        'community.wave.seqera.io/library/cnvkit:0.9.14--288e98d6210b7304' }"

    input:
    // the samples, their BAMs or CRAMs and indexes (lists in the samples' order: each BAM and
    // its index staged in a folder of its own, readsN/); the target and antitarget BEDs ([]
    // with a reference built earlier); each line's -p and the task's CPUs (subworkflows/local/
    // cpus); the chunk's name ('001', ...) or null for all the bins
    tuple val(metas), path(bams, stageAs: 'reads?/*'), path(bais, stageAs: 'reads?/*'), path(targets), path(antitargets), val(threads), val(slots), val(chunk)
    tuple path(fasta), path(fai)  // what a CRAM's reads are read against
    path reused, stageAs: 'reused/*'  // reference.cnn built earlier, whose bins are used; or []
    val options  // checked option strings, {FIELD: {args, processes}}: read by conf/modules.config

    output:
    tuple val(metas), path("coverage/*.targetcoverage.cnn"), path("coverage/*.antitargetcoverage.cnn"), emit: cnn
    tuple val("${task.process}"), val('cnvkit'), eval('python3 -c "import importlib.metadata as m; print(m.version(\'cnvkit\'))" 2>/dev/null || cnvkit.py version'), emit: versions

    script:
    def args = task.ext.args ?: ''
    def regions = reused ? "reference2targets.py ${reused} -o regions\n    ===" : ''
    def target_bed = reused ? 'regions.target.bed' : targets
    def antitarget_bed = reused ? 'regions.antitarget.bed' : antitargets
    def blocks = [metas, [bams].flatten()].transpose().collect { meta, bam ->
        def prefix = chunk ? "${meta.id}.${chunk}" : "${meta.id}"
        def reads = bam.name.endsWith('.cram') ? "${bam} -f ${fasta}" : bam
        """cnvkit.py coverage ${reads} ${target_bed} ${args} -p ${threads} -o coverage/${prefix}.targetcoverage.cnn
    cnvkit.py coverage ${reads} ${antitarget_bed} ${args} -p ${threads} -o coverage/${prefix}.antitargetcoverage.cnn"""
    }
    """
    mkdir -p coverage
    cnvkit_stage.py --jobs ${blockJobs(task.cpus, threads)} <<'CNVKIT'
    ${regions}
    ${blocks.join('\n    ---\n    ')}
    CNVKIT
    """

    stub:  // a line per bin (the BEDs' lines), so that what is sized by bins can be checked
    def target_bed = reused ?: targets
    def antitarget_bed = reused ? '/dev/null' : antitargets
    def copies = metas.collect { meta ->
        def prefix = chunk ? "${meta.id}.${chunk}" : "${meta.id}"
        "cp ${target_bed} coverage/${prefix}.targetcoverage.cnn; cp ${antitarget_bed} coverage/${prefix}.antitargetcoverage.cnn"
    }
    """
    mkdir -p coverage
    ${copies.join('\n    ')}
    """
}
