process SAMTOOLS_FAIDX {
    tag "${fasta.name}"
    conda "bioconda::samtools=1.21"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://depot.galaxyproject.org/singularity/samtools:1.21--h50ea8bc_0' :
        'quay.io/biocontainers/samtools:1.21--h50ea8bc_0' }"

    input:
    path fasta

    output:
    tuple path(fasta), path("*.fai"), emit: fasta_fai
    tuple val("${task.process}"), val('samtools'), eval("samtools version | sed -n '1s/^samtools //p'"), emit: versions

    script:
    """
    samtools faidx ${fasta}
    """

    stub:
    """
    touch ${fasta}.fai
    """
}
