process SAMTOOLS_INDEX {
    tag "${meta.id}"
    conda "bioconda::samtools=1.21"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://depot.galaxyproject.org/singularity/samtools:1.21--h50ea8bc_0' :
        'quay.io/biocontainers/samtools:1.21--h50ea8bc_0' }"

    input:
    tuple val(meta), path(bam)

    output:
    tuple val(meta), path(bam), path("*.{bai,crai}"), emit: bam_bai  // a BAM's or a CRAM's
    tuple val("${task.process}"), val('samtools'), eval("samtools version | sed -n '1s/^samtools //p'"), emit: versions

    script:
    """
    samtools index ${bam}
    """

    stub:
    """
    touch ${bam}.${bam.name.endsWith('.cram') ? 'crai' : 'bai'}
    """
}
