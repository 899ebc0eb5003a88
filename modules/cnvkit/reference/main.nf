process CNVKIT_REFERENCE {
    tag "${coverages ? 'pooled' : 'flat'}"
    label 'process_single'
    conda "bioconda::cnvkit=0.9.14"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://community-cr-prod.seqera.io/docker/registry/v2/blobs/sha256/39/3935f8d7507f85fd20e073f0625bb6bdff8aa1b6044f4bbb720c9a8063ea0390/data' :
        'community.wave.seqera.io/library/cnvkit:0.9.14--288e98d6210b7304' }"

    input:
    path coverages  // control coverages, or [] for a flat reference
    path targets
    path antitargets
    tuple path(fasta), path(fai)

    output:
    path "reference/reference.cnn", emit: cnn
    tuple val("${task.process}"), val('cnvkit'), eval('python3 -c "import importlib.metadata as m; print(m.version(\'cnvkit\'))" 2>/dev/null || cnvkit.py version'), emit: versions

    script:
    def args = task.ext.args ?: ''
    def controls = coverages ? "${coverages}" : ''
    def flat = coverages ? '' : "-t ${targets} -a ${antitargets}"  // no controls: a flat reference
    """
    mkdir -p reference
    cnvkit.py reference ${controls} ${args} ${flat} -f ${fasta} -o reference/reference.cnn
    """

    stub:
    """
    mkdir -p reference
    touch reference/reference.cnn
    """
}
