// The manifest of a run's results (bin/result_manifest.py): every file the run publishes,
// with its size and SHA-256, read from the very files the stages made. main.nf places it in
// output_dir after Nextflow has published every file.
process RESULT_MANIFEST {
    tag "${paths.size()} files"
    conda "bioconda::cnvkit=0.9.14"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://community-cr-prod.seqera.io/docker/registry/v2/blobs/sha256/39/3935f8d7507f85fd20e073f0625bb6bdff8aa1b6044f4bbb720c9a8063ea0390/data' :
        'community.wave.seqera.io/library/cnvkit:0.9.14--288e98d6210b7304' }"

    input:
    val paths  // the result path of each file, in the order of `files`
    path files, stageAs: 'in/?????/*'
    path job  // job.json: the job (or run) and its request

    output:
    path "manifest.json", emit: manifest

    script:
    manifestCommand(paths, job)

    stub:  // the same: it reads only the files it is given
    manifestCommand(paths, job)
}

def manifestCommand(paths, job) {
    """
    cat > paths.txt <<'PATHS'
${paths.join('\n')}
PATHS
    result_manifest.py --paths paths.txt --staged in --job ${job} -o manifest.json
    """
}
