// Regions of a job, once per job: gene symbols from the annotation (when given), then, by the
// job's method (params.method), CNVkit's access, the bin sizes (bin/bin_sizes.py), target and
// antitarget in one interpreter (bin/cnvkit_stage.py), as `cnvkit.py batch -m METHOD` makes them:
//   hybrid:   access (or the given access_bed, copied), target BED, antitarget -g access;
//   amplicon: target BED only, no access, an empty antitargets.bed (as batch writes);
//   wgs:      access (or access_bed), target BED_OR_ACCESS --split --avg-size N, an empty
//             antitargets.bed.
// access takes access_conf's options and `-x FILE` for each exclusion BED. The bin sizes follow
// the checked options' plan (size, size_from, split of target_conf and antitarget_conf):
// bin_sizes.py writes reference/bin_sizes.json and the words `{target_size}` (e.g. `--split
// --avg-size 267`) and `{antitarget_size}` (e.g. `-a 90000`) of the target and antitarget
// lines; where a size_from is "autobin" it computes it with CNVkit's autobin from `bams` (the
// controls', else the tumours', with their indexes). After antitarget, `bin_sizes.py --check`
// adds the bin counts and the warnings of sizes that cannot fit. A job that reuses a
// reference takes its regions from it instead, as `cnvkit.py batch -r` does (CNVkit's
// reference2targets.py), and publishes the reference (with its record) among its results.
// On a single machine a hybrid job whose bin sizes are not autobin's makes its targets (the
// annotation's symbols, target) beside access, on a second CPU (bin/cnvkit_stage.py blocks):
// they do not read it. A cluster job asks for one CPU (a second would be held for seconds).
// Options: task.ext.args -> access (access_conf), ext.args2 -> target (target_conf),
//          ext.args3 -> antitarget (antitarget_conf).

include { sharedMachine } from '../../../subworkflows/local/cpus'

// Whether the targets are made beside access: on a single machine, a hybrid job that runs
// access and whose bin sizes are not autobin's (autobin reads access; a wgs job's targets may
// be access).
def targetsBesideAccess(options, access_bed, reused) {
    def given = { f -> f instanceof Collection ? f : (f ? [f] : []) }
    return sharedMachine() && params.method == 'hybrid' && !given(access_bed) && !given(reused) &&
        !['target_conf', 'antitarget_conf'].any { name -> options[name]?.size_from == 'autobin' }
}

process CNVKIT_PREPARE {
    tag "${params.method} ${bed ? bed.name : 'genome'}"
    cpus { targetsBesideAccess(options, access_bed, reused) ? Math.min(2, params.max_cpus as int) : 1 }
    conda "bioconda::cnvkit=0.9.14"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://community-cr-prod.seqera.io/docker/registry/v2/blobs/sha256/39/3935f8d7507f85fd20e073f0625bb6bdff8aa1b6044f4bbb720c9a8063ea0390/data' :
        'community.wave.seqera.io/library/cnvkit:0.9.14--288e98d6210b7304' }"

    input:
    tuple path(fasta), path(fai)
    path bed, stageAs: 'regions/*'  // user files: never where an output is written ([]: wgs, none)
    path annotation, stageAs: 'genes/*'  // GFF3, GTF, refFlat or BED; [] for none
    path reused, stageAs: 'reused/*'  // a reference built earlier, its record; [] for none
    path access_bed, stageAs: 'access/*'  // a precomputed access BED, used instead of access; []
    path excludes, stageAs: 'exclude*/*'  // exclusion BEDs: access -x FILE each; []
    path bams, stageAs: 'bams/*'  // BAMs or CRAMs and their indexes autobin reads; [] without
    val options  // checked option strings, {FIELD: {args, processes}}: read by conf/modules.config

    output:
    path "reference/access.bed", emit: access, optional: true
    path "reference/reference.cnn", emit: reference, optional: true
    path "reference/reference.json", emit: record, optional: true
    path "reference/targets.bed", emit: targets
    path "reference/antitargets.bed", emit: antitargets
    path "reference/annotation.bed", emit: annotation, optional: true
    path "reference/bin_sizes.json", emit: bin_sizes, optional: true
    tuple val("${task.process}"), val('cnvkit'), eval('python3 -c "import importlib.metadata as m; print(m.version(\'cnvkit\'))" 2>/dev/null || cnvkit.py version'), emit: versions

    script:
    def method = params.method
    def access_args = task.ext.args ?: ''
    def target_args = task.ext.args2 ?: ''
    def antitarget_args = task.ext.args3 ?: ''
    def beside = targetsBesideAccess(options, access_bed, reused)
    def symbols = annotation ? "annotation_to_bed.py ${annotation} reference/annotation.bed" : ''
    def annotate = annotation ? '--annotate reference/annotation.bed' : ''
    def given = reused instanceof Collection ? reused : [reused]
    // The bin-size plan of the checked options (bin/cnvkit_options.py stage_options)
    def target_plan = options.target_conf
    def antitarget_plan = options.antitarget_conf
    def reads = (bams instanceof Collection ? bams : [bams]).findAll { f -> f.name.endsWith('.bam') || f.name.endsWith('.cram') }
    def sizes = [
        "--method ${method}", target_plan.autobin ? '--autobin' : '', target_plan.split ? '--split' : '',
        "--target-from '${target_plan.size_from}'", target_plan.size != null ? "--target-size ${target_plan.size}" : '',
        "--antitarget-from '${antitarget_plan.size_from}'", antitarget_plan.size != null ? "--antitarget-size ${antitarget_plan.size}" : '',
        reads.collect { f -> "--bam ${f}" }.join(' '),
        method == 'amplicon' || beside ? '' : '--access reference/access.bed',  // autobin's, wgs'
        bed ? "--targets ${bed}" : '',
        "--fasta ${fasta}", '-o reference/bin_sizes.json --words bin_words.json',
    ]
    def exclusions = (excludes instanceof Collection ? excludes : [excludes]).collect { f -> "-x ${f}" }.join(' ')
    def fasta_name = "${fasta}"
    def bed_name = bed ? "${bed}" : 'reference/access.bed'  // wgs without a BED: the accessible regions
    def access_line = ''
    def copied = ''
    if (method != 'amplicon') {
        access_line = access_bed ? '' : "cnvkit.py access ${fasta_name} ${access_args} ${exclusions} -o reference/access.bed"
        copied = access_bed ? "cp ${access_bed} reference/access.bed" : ''
    }
    def antitarget_line = method == "hybrid" ?
        "cnvkit.py antitarget reference/targets.bed ${antitarget_args} {antitarget_size} -g reference/access.bed -o reference/antitargets.bed" :
        '# no antitargets: reference/antitargets.bed stays empty, as batch writes it'
    def check_line = "bin_sizes.py --check reference/bin_sizes.json --targets reference/targets.bed --antitargets reference/antitargets.bed" +
        (method == 'amplicon' ? '' : ' --access reference/access.bed')
    if (given) {
        def cnn = given.find { f -> f.name.endsWith('.cnn') }
        def record = given.find { f -> f.name.endsWith('.json') }
        """
        mkdir -p reference
        cp ${cnn} reference/reference.cnn
        ${record ? "cp ${record} reference/reference.json" : ''}
        cnvkit_stage.py <<'CNVKIT'
        reference2targets.py reference/reference.cnn -o reference/regions
        CNVKIT
        mv reference/regions.target.bed reference/targets.bed
        mv reference/regions.antitarget.bed reference/antitargets.bed
        """
    } else {
    """
    mkdir -p reference
    ${copied}
    ${method == 'hybrid' ? '' : 'touch reference/antitargets.bed'}
    cnvkit_stage.py --jobs ${task.cpus} --words-from bin_words.json <<'CNVKIT'
    ${access_line}
    ${beside ? '---' : ''}
    ${symbols}
    bin_sizes.py ${sizes.findAll().join(' ')}
    cnvkit.py target ${bed_name} ${target_args} {target_size} ${annotate} -o reference/targets.bed
    ${beside ? '===' : ''}
    ${antitarget_line}
    ${check_line}
    CNVKIT
    """
    }

    stub:  // the regions as given, so that what depends on their number can be checked
    def copies = reused ? (reused instanceof Collection ? reused : [reused]).collect { f -> "cp ${f} reference/reference.${f.name.tokenize('.').last()}" }.join('\n') : 'touch reference/access.bed; echo {} > reference/bin_sizes.json'
    """
    mkdir -p reference
    ${bed ? "cp ${bed} reference/targets.bed" : 'touch reference/targets.bed'}
    touch reference/antitargets.bed ${annotation ? 'reference/annotation.bed' : ''}
    ${copies}
    """
}
