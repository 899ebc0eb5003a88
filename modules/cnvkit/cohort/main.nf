// The job's cohort, once per job, after every sample: sex of every sample, then the tumours'
// SEG, metrics and (two or more tumours, plots on) heatmap, and bin/cnvkit_report.py's MultiQC
// table and (plots on) report.html, in one interpreter (bin/cnvkit_stage.py: the report reads
// call's options with CNVkit's parser). Outputs are written where they are published.
// report.html shows the method, the bin sizes and their warnings (bin_sizes.json), the
// heatmap when drawn, and counts the bins of the tumours' ratios (QC limits scale with them);
// each tumour's chromosome and gene plots, diagram, genes of interest and bintest.
// Options: task.ext.args -> sex (sex_conf); ext.args2 -> call_conf, whose sex options ({sex})
//          the heatmap takes, with -x SEX when every tumour was given that sex, and the
//          report reads with each tumour's facts (its assumptions);
//          task.ext.plots false -> no heatmap, no report.html.
process CNVKIT_COHORT {
    tag "${[ratios].flatten().size()} tumour(s)"
    conda "bioconda::cnvkit=0.9.14"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://community-cr-prod.seqera.io/docker/registry/v2/blobs/sha256/39/3935f8d7507f85fd20e073f0625bb6bdff8aa1b6044f4bbb720c9a8063ea0390/data' :
        'community.wave.seqera.io/library/cnvkit:0.9.14--288e98d6210b7304' }"

    input:
    path coverages  // target coverage of every sample
    path ratios     // .cnr of every tumour, in the order of `segments`
    path segments   // .cns of every tumour
    path calls      // .call.cns of every tumour
    path scatters   // scatter PNG of every tumour, or [] without plots
    path panels     // every tumour's chromosome and gene scatter PNGs and diagram SVG, or []
    path genes      // every tumour's .genes_of_interest.tsv, or [] without genes of interest
    path bintests   // every tumour's .bintest.cns
    path references  // reference.cnn, or each sample's (leave-one-out)
    path samples     // samples.json: every sample's facts and each tumour's call options
    val tumour_sex   // the sex every tumour was given, or ''
    path job        // job.json: the job (or run) and its request, versions (see the workflow)
    path results    // results.txt: every result file's published path
    path bin_sizes  // the regions' bin_sizes.json (method, bin sizes, warnings); [] when reused
    path controls_metrics  // CNVKIT_PANEL's controls-metrics.tsv; [] when it did not run
    val options  // checked option strings, {FIELD: {args, processes}}: read by conf/modules.config

    output:
    path "sex/sex.tsv", emit: sex
    path "cohort/cohort.seg", emit: seg
    path "cohort/metrics.tsv", emit: metrics
    path "cohort/heatmap.png", emit: heatmap, optional: true
    path "cohort/cnvkit_mqc.tsv", emit: multiqc
    path "report.html", emit: report, optional: true
    tuple val("${task.process}"), val('cnvkit'), eval('python3 -c "import importlib.metadata as m; print(m.version(\'cnvkit\'))" 2>/dev/null || cnvkit.py version'), emit: versions

    script:
    def sex_args = task.ext.args ?: ''
    def call_args = [task.ext.args2 ?: '', tumour_sex ? "-x ${tumour_sex}" : ''].findAll().join(' ')
    def plots = task.ext.plots != false
    def sexed = [coverages, ratios].flatten().sort { f -> f.name }
    def heatmap = plots && segments instanceof List && segments.size() > 1 ?
        "\n    cnvkit.py heatmap ${segments} {sex} -o cohort/heatmap.png" : ''
    """
    mkdir -p sex cohort
    cnvkit_stage.py --sex-of='${call_args}' --optional heatmap <<'CNVKIT'
    cnvkit.py sex ${sexed.join(' ')} ${sex_args} -o sex/sex.tsv
    cnvkit.py sex ${references} -o reference-sex.tsv
    cnvkit.py export seg ${segments} -o cohort/cohort.seg
    cnvkit.py metrics ${ratios} -s ${segments} -o cohort/metrics.tsv${heatmap}
    cnvkit_report.py --job ${job} --results ${results} --sex sex/sex.tsv --reference-sex reference-sex.tsv --samples ${samples} --call-options='${task.ext.args2 ?: ''}' --metrics cohort/metrics.tsv --calls ${calls} --ratios ${ratios} ${bin_sizes ? "--bin-sizes ${bin_sizes}" : ''} ${controls_metrics ? "--controls-metrics ${controls_metrics}" : ''} ${plots ? "--scatters ${scatters} --heatmap cohort/heatmap.png --html report.html" : ''} ${panels ? "--panels ${panels}" : ''} ${genes ? "--genes-of-interest ${genes}" : ''} ${bintests ? "--bintests ${bintests}" : ''} --multiqc cohort/cnvkit_mqc.tsv
    CNVKIT
    """

    stub:
    def plots = task.ext.plots != false
    """
    mkdir -p sex cohort
    touch sex/sex.tsv cohort/cohort.seg cohort/metrics.tsv cohort/cnvkit_mqc.tsv
    ${plots ? 'touch report.html' : ''}
    ${plots && segments instanceof List && segments.size() > 1 ? 'touch cohort/heatmap.png' : ''}
    """
}
