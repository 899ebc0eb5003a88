// One sample's read depths in its target and antitarget bins, in one interpreter
// (bin/cnvkit_stage.py): target, then antitarget, each across every CPU of the task. With a
// reference built earlier the bins are its own, taken from it first as `batch -r` does (so
// the task need not wait for CNVKIT_PREPARE, which publishes the same regions). A CRAM is read
// with the job's FASTA. Options: task.ext.args -> both coverage lines (coverage_conf).
// A big job's coverage runs as one task per (sample, chunk of whole chromosomes), this module
// included as CNVKIT_COVERAGE_CHUNK (subworkflows/local/coverage): `chunk` names the chunk,
// whose BEDs are given, and its files are merged per sample (CNVKIT_COVERAGE_MERGE).
process CNVKIT_COVERAGE {
    tag "${meta.id}${chunk ? " chunk ${chunk}" : ''}"
    conda "bioconda::cnvkit=0.9.14"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://community-cr-prod.seqera.io/docker/registry/v2/blobs/sha256/39/3935f8d7507f85fd20e073f0625bb6bdff8aa1b6044f4bbb720c9a8063ea0390/data' :
        'community.wave.seqera.io/library/cnvkit:0.9.14--288e98d6210b7304' }"

    input:
    // a BAM or CRAM and its index; the target and antitarget BEDs ([] with a reference built
    // earlier); the CPUs the task asks for (subworkflows/local/cpus); the chunk's name ('001',
    // ...) or null for all the bins
    tuple val(meta), path(bam), path(bai), path(targets), path(antitargets), val(threads), val(chunk)
    tuple path(fasta), path(fai)  // what a CRAM's reads are read against
    path reused, stageAs: 'reused/*'  // reference.cnn built earlier, whose bins are used; or []
    val options  // checked option strings, {FIELD: {args, processes}}: read by conf/modules.config

    output:
    tuple val(meta), path("coverage/*.targetcoverage.cnn"), path("coverage/*.antitargetcoverage.cnn"), emit: cnn
    tuple val("${task.process}"), val('cnvkit'), eval('python3 -c "import importlib.metadata as m; print(m.version(\'cnvkit\'))" 2>/dev/null || cnvkit.py version'), emit: versions

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: (chunk ? "${meta.id}.${chunk}" : "${meta.id}")
    def regions = reused ? "reference2targets.py ${reused} -o regions" : ''
    def target_bed = reused ? 'regions.target.bed' : targets
    def antitarget_bed = reused ? 'regions.antitarget.bed' : antitargets
    def reads = bam.name.endsWith('.cram') ? "${bam} -f ${fasta}" : bam
    """
    mkdir -p coverage
    cnvkit_stage.py <<'CNVKIT'
    ${regions}
    cnvkit.py coverage ${reads} ${target_bed} ${args} -p ${task.cpus} -o coverage/${prefix}.targetcoverage.cnn
    cnvkit.py coverage ${reads} ${antitarget_bed} ${args} -p ${task.cpus} -o coverage/${prefix}.antitargetcoverage.cnn
    CNVKIT
    """

    stub:  // a line per bin (the BEDs' lines), so that what is sized by bins can be checked
    def prefix = task.ext.prefix ?: (chunk ? "${meta.id}.${chunk}" : "${meta.id}")
    def target_bed = reused ?: targets
    def antitarget_bed = reused ? '/dev/null' : antitargets
    """
    mkdir -p coverage
    cp ${target_bed} coverage/${prefix}.targetcoverage.cnn
    cp ${antitarget_bed} coverage/${prefix}.antitargetcoverage.cnn
    """
}
