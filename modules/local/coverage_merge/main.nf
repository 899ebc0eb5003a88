// One sample's coverage from its chunks (bin/coverage_chunks.py merge): the rows of each chunk's
// .cnn in the chunks' order under one header, the very files one CNVKIT_COVERAGE task writes,
// published as they are.
process CNVKIT_COVERAGE_MERGE {
    tag "${meta.id}"
    conda "bioconda::cnvkit=0.9.14"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://community-cr-prod.seqera.io/docker/registry/v2/blobs/sha256/39/3935f8d7507f85fd20e073f0625bb6bdff8aa1b6044f4bbb720c9a8063ea0390/data' :
        'community.wave.seqera.io/library/cnvkit:0.9.14--288e98d6210b7304' }"

    input:
    // the sample; its chunks' target and antitarget coverages, each list in the chunks' order
    tuple val(meta), path(targets, stageAs: 'target/*'), path(antitargets, stageAs: 'antitarget/*')

    output:
    tuple val(meta), path("coverage/*.targetcoverage.cnn"), path("coverage/*.antitargetcoverage.cnn"), emit: cnn

    script:
    def prefix = task.ext.prefix ?: "${meta.id}"
    def inOrder = { files -> (files instanceof Collection ? files : [files]).join(' ') }
    """
    mkdir -p coverage
    coverage_chunks.py merge ${inOrder(targets)} -o coverage/${prefix}.targetcoverage.cnn
    coverage_chunks.py merge ${inOrder(antitargets)} -o coverage/${prefix}.antitargetcoverage.cnn
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p coverage
    touch coverage/${prefix}.targetcoverage.cnn coverage/${prefix}.antitargetcoverage.cnn
    """
}
