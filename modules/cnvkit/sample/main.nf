// One experimental sample from coverage to calls, in one interpreter (bin/cnvkit_stage.py):
// fix, segment, call and genemetrics.
// Options: task.ext.args -> fix (fix_conf), ext.args2 -> segment (segment_conf),
//          ext.args3 -> call (call_conf), ext.args4 -> genemetrics (genemetrics_conf).
process CNVKIT_SAMPLE {
    tag "${meta.id}"
    label 'process_single'
    conda "bioconda::cnvkit=0.9.14"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://community-cr-prod.seqera.io/docker/registry/v2/blobs/sha256/39/3935f8d7507f85fd20e073f0625bb6bdff8aa1b6044f4bbb720c9a8063ea0390/data' :
        'community.wave.seqera.io/library/cnvkit:0.9.14--288e98d6210b7304' }"

    input:
    tuple val(meta), path(target_cnn), path(antitarget_cnn)
    path reference

    output:
    tuple val(meta), path("${meta.id}.cnr"), emit: cnr
    tuple val(meta), path("${meta.id}.cns"), emit: cns
    tuple val(meta), path("${meta.id}.call.cns"), emit: calls
    tuple val(meta), path("${meta.id}.genemetrics.tsv"), emit: genemetrics
    tuple val("${task.process}"), val('cnvkit'), eval('python3 -c "import importlib.metadata as m; print(m.version(\'cnvkit\'))" 2>/dev/null || cnvkit.py version'), emit: versions

    script:
    def fix_args = task.ext.args ?: ''
    def segment_args = task.ext.args2 ?: ''
    def call_args = task.ext.args3 ?: ''
    def genemetrics_args = task.ext.args4 ?: ''
    def prefix = "${meta.id}"
    """
    cnvkit_stage.py <<'CNVKIT'
    cnvkit.py fix ${target_cnn} ${antitarget_cnn} ${reference} ${fix_args} -o ${prefix}.cnr
    cnvkit.py segment ${prefix}.cnr ${segment_args} -p ${task.cpus} --rscript-path Rscript -o ${prefix}.cns
    cnvkit.py call ${prefix}.cns ${call_args} -o ${prefix}.call.cns
    cnvkit.py genemetrics ${prefix}.cnr ${genemetrics_args} -s ${prefix}.cns -o ${prefix}.genemetrics.tsv
    CNVKIT
    """

    stub:
    def prefix = "${meta.id}"
    """
    touch ${prefix}.cnr ${prefix}.cns ${prefix}.call.cns ${prefix}.genemetrics.tsv
    """
}
