process CNVKIT_TARGET {
    tag "${bed.name}"
    label 'process_single'
    conda "bioconda::cnvkit=0.9.14"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://community-cr-prod.seqera.io/docker/registry/v2/blobs/sha256/39/3935f8d7507f85fd20e073f0625bb6bdff8aa1b6044f4bbb720c9a8063ea0390/data' :
        'community.wave.seqera.io/library/cnvkit:0.9.14--288e98d6210b7304' }"

    input:
    path bed, stageAs: 'input/*'  // a user file: never where an output is written
    path annotation  // gene symbols as BED, or [] for none

    output:
    path "targets.bed", emit: bed
    tuple val("${task.process}"), val('cnvkit'), eval('python3 -c "import importlib.metadata as m; print(m.version(\'cnvkit\'))" 2>/dev/null || cnvkit.py version'), emit: versions

    script:
    def args = task.ext.args ?: ''
    def annotate = annotation ? "--annotate ${annotation}" : ''
    """
    cnvkit.py target ${bed} ${args} ${annotate} -o targets.bed
    """

    stub:
    """
    touch targets.bed
    """
}
