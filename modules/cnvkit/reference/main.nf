// The pooled reference of the controls (flat without), and its record (bin/reference_record.py):
// the FASTA, BED, annotation, controls and the option strings it was built with, so that a job
// reusing it can check them. Options: task.ext.args -> reference (reference_conf);
// task.ext.options: the job's option strings, of which the record keeps those that shape a
// reference.
process CNVKIT_REFERENCE {
    tag "${coverages ? 'pooled' : 'flat'}"
    conda "bioconda::cnvkit=0.9.14"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://community-cr-prod.seqera.io/docker/registry/v2/blobs/sha256/39/3935f8d7507f85fd20e073f0625bb6bdff8aa1b6044f4bbb720c9a8063ea0390/data' :
        'community.wave.seqera.io/library/cnvkit:0.9.14--288e98d6210b7304' }"

    input:
    path coverages  // control coverages, or [] for a flat reference
    path targets
    path antitargets
    tuple path(fasta), path(fai)
    path bed, stageAs: 'regions/*'  // the user's BED and annotation: recorded, not read again
    path annotation, stageAs: 'genes/*'
    val options  // checked option strings, {FIELD: {args, processes}}: read by conf/modules.config

    output:
    path "reference/reference.cnn", emit: cnn
    path "reference/reference.json", emit: record
    tuple val("${task.process}"), val('cnvkit'), eval('python3 -c "import importlib.metadata as m; print(m.version(\'cnvkit\'))" 2>/dev/null || cnvkit.py version'), emit: versions

    script:
    def args = task.ext.args ?: ''
    def controls = coverages ? "${coverages}" : ''
    def flat = coverages ? '' : "-t ${targets} -a ${antitargets}"  // no controls: a flat reference
    def names = (coverages instanceof Collection ? coverages : [coverages])
        .findAll { f -> f.name.endsWith('.targetcoverage.cnn') }
        .collect { f -> "--control ${f.name - '.targetcoverage.cnn'}" }.join(' ')
    def options = task.ext.options ?: ''  // --option=FIELD='ARGS' of each option string
    """
    mkdir -p reference
    cnvkit.py reference ${controls} ${args} ${flat} -f ${fasta} -o reference/reference.cnn
    reference_record.py --fasta ${fasta} --fai ${fai} --bed ${bed} ${annotation ? "--annotation ${annotation}" : ''} \\
        ${names} ${options} --pipeline '${workflow.manifest.version}' -o reference/reference.json
    """

    stub:
    """
    mkdir -p reference
    touch reference/reference.cnn
    echo '{}' > reference/reference.json
    """
}
