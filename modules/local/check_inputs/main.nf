process CHECK_INPUTS {
    tag "${bams.size()} BAMs"
    // Header-level checks: re-run only when an input's path or size changes, not its mtime.
    cache 'lenient'
    conda "bioconda::cnvkit=0.9.14"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://community-cr-prod.seqera.io/docker/registry/v2/blobs/sha256/39/3935f8d7507f85fd20e073f0625bb6bdff8aa1b6044f4bbb720c9a8063ea0390/data' :
        'community.wave.seqera.io/library/cnvkit:0.9.14--288e98d6210b7304' }"

    input:
    tuple path(fasta), path(fai)  // fai: [] when the FASTA has no up-to-date index
    path bed  // or [] (method wgs without a BED)
    path annotation  // or [] when no annotation is used
    path access_bed, stageAs: 'access/*'  // a precomputed access BED, or []
    path excludes, stageAs: 'exclude*/*'  // access's exclusion BEDs, or []
    tuple val(names), path(bams)
    path reused, stageAs: 'reused/*'  // a reference to reuse and its record; [] for none
    val conf  // the request's option strings as given, {FIELD: ARGS} (no quote: nextflow_schema.json)
    path samples  // sample_rows.json: the request's rows, for the rules across them and the roles
                  // the job's kind allows; [] for the seed's lists
    // the VCFs, each once in its own folder (two may share a name); for each sample that reads
    // one, its index in `vcfs` and the columns it needs (its own, its normal's)
    tuple val(vcf_of), val(vcf_columns), path(vcfs, stageAs: 'vcf*/*')

    output:
    path "input_check.txt", emit: report
    path "indexes.json", emit: indexes  // which indexes are used as they are, which are built
    path "options.json", emit: options  // the option strings as CNVkit's parsers accepted them
    tuple val("${task.process}"), val('cnvkit'), eval('python3 -c "import importlib.metadata as m; print(m.version(\'cnvkit\'))" 2>/dev/null || cnvkit.py version'), emit: versions

    script:
    def pairs = [names, bams].transpose().collect { pair -> "--bam ${pair[0]}=${pair[1]}" }.join(' ')
    def annotate = annotation ? "--annotation ${annotation}" : ''
    def cnn = (reused instanceof Collection ? reused : [reused]).find { f -> f.name.endsWith('.cnn') }
    def reference = cnn ? "--reference-cnn ${cnn}" : ''
    def options = conf.collect { field, text -> "--option=${field}='${text}'" }.join(' ')
    def staged = vcfs instanceof Collection ? vcfs : [vcfs]
    def variants = vcf_of.collect { id, i ->
        "--vcf ${id}=${staged[i]} --vcf-columns ${id}=${vcf_columns[id].join(',')}"
    }.join(' ')
    def rows = samples ? "--samples ${samples} --reference-mode ${params.reference_mode}" +
        (params.reference_only ? ' --reference-only' : '') : ''
    // The assay (issue 25): each flag only when it differs from check_inputs.py's default.
    def assay = [
        params.method && params.method != 'hybrid' ? "--method ${params.method}" : '',
        params.autobin != null ? "--autobin ${params.autobin}" : '',
        access_bed ? "--access-bed ${access_bed}" : '',
        (excludes instanceof Collection ? excludes : [excludes]).collect { f -> "--exclude ${f}" }.join(' '),
    ].findAll().join(' ')
    """
    require_tools ${workflow.containerEngine ? '' : '--host'}
    check_inputs.py --ref ${fasta} ${bed ? "--bed ${bed}" : ''} ${annotate} ${pairs} ${reference} ${rows} ${variants} ${assay} \\
        ${options} --check-options options.json --indexes indexes.json > input_check.txt || {
        cat input_check.txt >&2
        exit 1
    }
    """

    stub:  // the option strings and the index decisions only: what the wiring depends on
    def pairs = [names, bams].transpose().collect { pair -> "--bam ${pair[0]}=${pair[1]}" }.join(' ')
    def options = conf.collect { field, text -> "--option=${field}='${text}'" }.join(' ')
    """
    touch input_check.txt
    require_tools ${workflow.containerEngine ? '' : '--host'}
    check_inputs.py --ref ${fasta} ${pairs} ${options} --check-options options.json \\
        --indexes indexes.json --indexes-only
    """
}
