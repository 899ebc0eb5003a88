process CNVKIT_COVERAGE {
    tag "${meta.id}"
    label 'process_single'
    conda "bioconda::cnvkit=0.9.14"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://community-cr-prod.seqera.io/docker/registry/v2/blobs/sha256/39/3935f8d7507f85fd20e073f0625bb6bdff8aa1b6044f4bbb720c9a8063ea0390/data' :
        'community.wave.seqera.io/library/cnvkit:0.9.14--288e98d6210b7304' }"

    input:
    tuple val(meta), path(bam), path(bai)
    path targets
    path antitargets

    output:
    tuple val(meta), path("*.targetcoverage.cnn"), path("*.antitargetcoverage.cnn"), emit: cnn
    tuple val("${task.process}"), val('cnvkit'), eval('python3 -c "import importlib.metadata as m; print(m.version(\'cnvkit\'))" 2>/dev/null || cnvkit.py version'), emit: versions

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    // The CPUs granted to the task are shared by the two interval sets: with two or more, both
    // coverages run side by side (-p split between them); with one, one after the other.
    def together = task.cpus >= 2
    def target_p = together ? task.cpus - task.cpus.intdiv(2) : 1
    def antitarget_p = together ? task.cpus.intdiv(2) : 1
    def target = "cnvkit.py coverage ${bam} ${targets} ${args} -p ${target_p} -o ${prefix}.targetcoverage.cnn"
    def antitarget = "cnvkit.py coverage ${bam} ${antitargets} ${args} -p ${antitarget_p} -o ${prefix}.antitargetcoverage.cnn"
    def commands = together ? "${target} &\ntarget_pid=\$!\n${antitarget}\nwait \$target_pid" : "${target}\n${antitarget}"
    """
    ${commands}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch ${prefix}.targetcoverage.cnn ${prefix}.antitargetcoverage.cnn
    """
}
