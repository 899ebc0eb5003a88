// One experimental sample from coverage to calls and their exports, in one interpreter
// (bin/cnvkit_stage.py): fix, segment, segmetrics, call, genemetrics, bintest, export vcf and
// bed, then (unless task.ext.plots is false) scatter and diagram, which may fail without
// failing the task (`--optional`). Outputs are written where they are published: samples/<id>/.
// Options: task.ext.args -> fix (fix_conf), ext.args2 -> segment (segment_conf),
//          ext.args3 -> call (call_conf), ext.args4 -> genemetrics (genemetrics_conf).
// Fixed settings: segmetrics --ci --pi --alpha 0.5 --smooth-bootstrap 0 (batch's interval,
// without the unseeded noise of the smoothed bootstrap: same inputs, same intervals);
// bintest -t; the diagram draws the calls' segments (with the bins, CNVkit squashes them gene
// by gene: ~7 s a tumour on 3,300 targets); the VCF, BED and diagram take call's sex options
// ({sex}: -y, -x, --diploid-parx-genome), the VCF and BED the sample id.
// The sample's facts (the workflow's sampleFacts) follow the options: call gets facts.call
// (-x SEX, --purity, --ploidy, -v VCF -i COLUMN [-n NORMAL_COLUMN]), so {sex} has its -x;
// genemetrics facts.sex; scatter facts.variants (its BAF panel).
process CNVKIT_SAMPLE {
    tag "${meta.id}"
    conda "bioconda::cnvkit=0.9.14"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://community-cr-prod.seqera.io/docker/registry/v2/blobs/sha256/39/3935f8d7507f85fd20e073f0625bb6bdff8aa1b6044f4bbb720c9a8063ea0390/data' :
        'community.wave.seqera.io/library/cnvkit:0.9.14--288e98d6210b7304' }"

    input:
    // the sample's coverage, its reference, its VCF or [], its facts as options
    tuple val(meta), path(target_cnn), path(antitarget_cnn), path(reference), path(vcf), val(facts)
    val options  // checked option strings, {FIELD: {args, processes}}: read by conf/modules.config
    val threads  // the CPUs the task asks for, segment's -p (subworkflows/local/cpus)

    output:
    tuple val(meta), path("samples/${meta.id}/${meta.id}.cnr"), emit: cnr
    tuple val(meta), path("samples/${meta.id}/${meta.id}.cns"), emit: cns
    tuple val(meta), path("samples/${meta.id}/${meta.id}.segmetrics.cns"), emit: segmetrics
    tuple val(meta), path("samples/${meta.id}/${meta.id}.call.cns"), emit: calls
    tuple val(meta), path("samples/${meta.id}/${meta.id}.genemetrics.tsv"), emit: genemetrics
    tuple val(meta), path("samples/${meta.id}/${meta.id}.bintest.cns"), emit: bintest
    tuple val(meta), path("samples/${meta.id}/${meta.id}.vcf"), emit: vcf
    tuple val(meta), path("samples/${meta.id}/${meta.id}.bed"), emit: bed
    tuple val(meta), path("samples/${meta.id}/${meta.id}-scatter.png"), emit: scatter, optional: true
    tuple val(meta), path("samples/${meta.id}/${meta.id}-diagram.pdf"), emit: diagram, optional: true
    tuple val("${task.process}"), val('cnvkit'), eval('python3 -c "import importlib.metadata as m; print(m.version(\'cnvkit\'))" 2>/dev/null || cnvkit.py version'), emit: versions

    script:
    def fix_args = task.ext.args ?: ''
    def segment_args = task.ext.args2 ?: ''
    def call_args = [task.ext.args3 ?: '', facts.call].findAll().join(' ')
    def genemetrics_args = [task.ext.args4 ?: '', facts.sex].findAll().join(' ')
    def variants = facts.variants ? " ${facts.variants}" : ''
    def id = "${meta.id}"
    def out = "samples/${id}/${id}"
    def plots = task.ext.plots == false ? '' : """
    cnvkit.py scatter ${out}.cnr -s ${out}.call.cns${variants} -o ${out}-scatter.png
    cnvkit.py diagram -s ${out}.call.cns {sex} -o ${out}-diagram.pdf"""
    """
    mkdir -p samples/${id}
    cnvkit_stage.py --sex-of='${call_args}' --optional scatter,diagram <<'CNVKIT'
    cnvkit.py fix ${target_cnn} ${antitarget_cnn} ${reference} ${fix_args} -o ${out}.cnr
    cnvkit.py segment ${out}.cnr ${segment_args} -p ${task.cpus} --rscript-path Rscript -o ${out}.cns
    cnvkit.py segmetrics ${out}.cnr -s ${out}.cns --ci --pi --alpha 0.5 --smooth-bootstrap 0 -o ${out}.segmetrics.cns
    cnvkit.py call ${out}.segmetrics.cns ${call_args} -o ${out}.call.cns
    cnvkit.py genemetrics ${out}.cnr ${genemetrics_args} -s ${out}.cns -o ${out}.genemetrics.tsv
    cnvkit.py bintest ${out}.cnr -s ${out}.cns -t -o ${out}.bintest.cns
    cnvkit.py export vcf ${out}.call.cns -i ${id} {sex} -o ${out}.vcf
    cnvkit.py export bed ${out}.call.cns -i ${id} {sex} -o ${out}.bed${plots}
    CNVKIT
    """

    stub:
    def id = "${meta.id}"
    def out = "samples/${id}/${id}"
    def plots = task.ext.plots == false ? '' : "${out}-scatter.png ${out}-diagram.pdf"
    """
    mkdir -p samples/${id}
    touch ${out}.cnr ${out}.cns ${out}.segmetrics.cns ${out}.call.cns ${out}.genemetrics.tsv
    touch ${out}.bintest.cns ${out}.vcf ${out}.bed ${plots}
    """
}
