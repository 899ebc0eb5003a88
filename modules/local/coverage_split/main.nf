// A big job's bins in chunks of whole chromosomes (bin/coverage_chunks.py split): consecutive
// chromosome groups of the BEDs' order, balanced by bin count, about max_bins bins each (a
// chromosome with more stays whole). With a reference built earlier its bins are taken from it
// first, as CNVKIT_COVERAGE does.
process CNVKIT_COVERAGE_SPLIT {
    tag "${max_bins} bins"
    conda "bioconda::cnvkit=0.9.14"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://community-cr-prod.seqera.io/docker/registry/v2/blobs/sha256/39/3935f8d7507f85fd20e073f0625bb6bdff8aa1b6044f4bbb720c9a8063ea0390/data' :
        'community.wave.seqera.io/library/cnvkit:0.9.14--288e98d6210b7304' }"

    input:
    // the target and antitarget BEDs, [] with a reference built earlier; that reference or []
    tuple path(targets), path(antitargets), path(reused, stageAs: 'reused/*')
    val max_bins  // params.coverage_chunk_bins

    output:
    tuple path("chunks/*.target.bed"), path("chunks/*.antitarget.bed"), emit: chunks

    script:
    def regions = reused ? "reference2targets.py ${reused} -o regions" : ''
    def target_bed = reused ? 'regions.target.bed' : targets
    def antitarget_bed = reused ? 'regions.antitarget.bed' : antitargets
    """
    ${regions}
    coverage_chunks.py split --max-bins ${max_bins} --targets ${target_bed} --antitargets ${antitarget_bed} -o chunks
    """

    stub:
    """
    mkdir -p chunks
    touch chunks/001.target.bed chunks/001.antitarget.bed chunks/002.target.bed chunks/002.antitarget.bed
    """
}
