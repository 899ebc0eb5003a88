// Experimental samples from coverage to calls and their exports, in one interpreter
// (bin/cnvkit_stage.py): fix, segment, segmetrics, call, genemetrics, bintest, export vcf and
// bed, with genes of interest their table (bin/genes_of_interest.py), then (unless
// task.ext.plots is false) the scatter plots (bin/sample_plots.py: the genome, each chromosome
// with a call, each gene of interest a call overlaps) and the diagram as PDF and SVG
// (bin/diagram_image.py), each plot optional (a failure is logged and skipped). A task calls
// one tumour or, on a single machine, every tumour of a small job (subworkflows/local/cpus),
// each a block of lines beside the others (--jobs). Outputs are written where they are
// published: samples/<id>/.
// Options: task.ext.args -> fix (fix_conf), ext.args2 -> segment (segment_conf),
//          ext.args3 -> call (call_conf), ext.args4 -> genemetrics (genemetrics_conf);
//          ext.genes: the genes of interest, comma-joined ('' or null: none).
// Fixed settings: segmetrics --ci --pi --alpha 0.5 --smooth-bootstrap 0 (batch's interval,
// without the unseeded noise of the smoothed bootstrap: same inputs, same intervals);
// bintest -t; the diagram draws the calls' segments (with the bins, CNVkit squashes them gene
// by gene: ~7 s a tumour on 3,300 targets); the VCF, BED and diagram take call's sex options
// ({sex}: -y, -x, --diploid-parx-genome), the VCF and BED the sample id.
// Each sample's facts (the workflow's sampleFacts) follow the options: call gets facts.call
// (-x SEX, --purity, --ploidy, -v VCF -i COLUMN [-n NORMAL_COLUMN]), so its block's {sex} has
// its -x; genemetrics and the genes' table facts.sex; the scatters facts.variants (their BAF
// panel); the scatters and the genes' table read the call options to tell calls from the
// copy numbers the sample's sex expects (bin/expected_states.py).
include { blockJobs } from '../../../subworkflows/local/cpus'

process CNVKIT_SAMPLE {
    tag "${metas*.id.join(' ')}"
    conda "bioconda::cnvkit=0.9.14"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://community-cr-prod.seqera.io/docker/registry/v2/blobs/sha256/39/3935f8d7507f85fd20e073f0625bb6bdff8aa1b6044f4bbb720c9a8063ea0390/data' :
        'community.wave.seqera.io/library/cnvkit:0.9.14--288e98d6210b7304' }"

    input:
    // the tumours; in their order, their coverages; their references and VCFs, each once (in
    // folders of their own: referenceN/, vcfN/); each tumour's facts as options, with the
    // staged paths of its reference and VCF; each segment line's -p and the task's CPUs
    tuple val(metas), path(target_cnns), path(antitarget_cnns), path(references, stageAs: 'reference?/*'), path(vcfs, stageAs: 'vcf?/*'), val(facts), val(threads), val(slots)
    val options  // checked option strings, {FIELD: {args, processes}}: read by conf/modules.config

    output:
    // every file of samples/<id>/ (the workflow tells them apart by name): <id>.cnr, .cns,
    // .segmetrics.cns, .call.cns, .genemetrics.tsv, .bintest.cns, .vcf, .bed, with genes of
    // interest .genes_of_interest.tsv; -scatter.png, -chromosome-<CHROM>-scatter.png,
    // -gene-<GENE>-scatter.png, -diagram.pdf and -diagram.svg (the plots that were drawn)
    tuple val(metas), path("samples/*/*"), emit: files
    tuple val("${task.process}"), val('cnvkit'), eval('python3 -c "import importlib.metadata as m; print(m.version(\'cnvkit\'))" 2>/dev/null || cnvkit.py version'), emit: versions

    script:
    def fix_args = task.ext.args ?: ''
    def segment_args = task.ext.args2 ?: ''
    def blocks = [metas, facts].transpose().collect { meta, f ->
        def call_args = [task.ext.args3 ?: '', f.call].findAll().join(' ')
        def genemetrics_args = [task.ext.args4 ?: '', f.sex].findAll().join(' ')
        def variants = f.variants ? " ${f.variants}" : ''
        def id = "${meta.id}"
        def out = "samples/${id}/${id}"
        def genes = task.ext.genes ? " --genes ${task.ext.genes}" : ''
        def plots = task.ext.plots == false ? '' : """
    sample_plots.py ${out}.cnr -s ${out}.call.cns --call-options='${call_args}'${genes}${variants} -o ${out}
    diagram_image.py -s ${out}.call.cns {sex} -o ${out}-diagram.pdf"""
        def table = task.ext.genes ? """
    genes_of_interest.py ${out}.cnr -s ${out}.cns --call-cns ${out}.call.cns --call-options='${call_args}'${genes} {sex} ${f.sex} -o ${out}.genes_of_interest.tsv""" : ''
        """--- --sex-of='${call_args}'
    cnvkit.py fix ${id}.targetcoverage.cnn ${id}.antitargetcoverage.cnn ${f.reference} ${fix_args} -o ${out}.cnr
    cnvkit.py segment ${out}.cnr ${segment_args} -p ${threads} --rscript-path Rscript -o ${out}.cns
    cnvkit.py segmetrics ${out}.cnr -s ${out}.cns --ci --pi --alpha 0.5 --smooth-bootstrap 0 -o ${out}.segmetrics.cns
    cnvkit.py call ${out}.segmetrics.cns ${call_args} -o ${out}.call.cns
    cnvkit.py genemetrics ${out}.cnr ${genemetrics_args} -s ${out}.cns -o ${out}.genemetrics.tsv
    cnvkit.py bintest ${out}.cnr -s ${out}.cns -t -o ${out}.bintest.cns
    cnvkit.py export vcf ${out}.call.cns -i ${id} {sex} -o ${out}.vcf
    cnvkit.py export bed ${out}.call.cns -i ${id} {sex} -o ${out}.bed${table}${plots}"""
    }
    """
    mkdir -p ${metas.collect { meta -> "samples/${meta.id}" }.join(' ')}
    cnvkit_stage.py --jobs ${blockJobs(task.cpus, threads)} <<'CNVKIT'
    ${blocks.join('\n    ')}
    CNVKIT
    """

    stub:
    def touches = metas.collect { meta ->
        def out = "samples/${meta.id}/${meta.id}"
        def plots = task.ext.plots == false ? '' : "${out}-scatter.png ${out}-diagram.pdf ${out}-diagram.svg"
        def table = task.ext.genes ? "${out}.genes_of_interest.tsv" : ''
        "mkdir -p samples/${meta.id}; touch ${out}.cnr ${out}.cns ${out}.segmetrics.cns ${out}.call.cns ${out}.genemetrics.tsv ${out}.bintest.cns ${out}.vcf ${out}.bed ${table} ${plots}"
    }
    """
    ${touches.join('\n    ')}
    """
}
