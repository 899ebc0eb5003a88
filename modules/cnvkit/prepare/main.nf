// Regions of a job, once per job: gene symbols from the annotation (when given), then CNVkit's
// access, target and antitarget in one interpreter (bin/cnvkit_stage.py). A job that reuses a
// reference takes its regions from it instead, as `cnvkit.py batch -r` does (CNVkit's
// reference2targets.py), and publishes the reference (with its record) among its results.
// Options: task.ext.args -> access, ext.args2 -> target (target_conf),
//          ext.args3 -> antitarget (antitarget_conf).
process CNVKIT_PREPARE {
    tag "${bed.name}"
    conda "bioconda::cnvkit=0.9.14"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://community-cr-prod.seqera.io/docker/registry/v2/blobs/sha256/39/3935f8d7507f85fd20e073f0625bb6bdff8aa1b6044f4bbb720c9a8063ea0390/data' :
        'community.wave.seqera.io/library/cnvkit:0.9.14--288e98d6210b7304' }"

    input:
    tuple path(fasta), path(fai)
    path bed, stageAs: 'regions/*'  // user files: never where an output is written
    path annotation, stageAs: 'genes/*'  // GFF3, GTF, refFlat or BED; [] for none
    path reused, stageAs: 'reused/*'  // a reference built earlier, its record; [] for none
    val options  // checked option strings, {FIELD: {args, processes}}: read by conf/modules.config

    output:
    path "reference/access.bed", emit: access, optional: true
    path "reference/reference.cnn", emit: reference, optional: true
    path "reference/reference.json", emit: record, optional: true
    path "reference/targets.bed", emit: targets
    path "reference/antitargets.bed", emit: antitargets
    path "reference/annotation.bed", emit: annotation, optional: true
    tuple val("${task.process}"), val('cnvkit'), eval('python3 -c "import importlib.metadata as m; print(m.version(\'cnvkit\'))" 2>/dev/null || cnvkit.py version'), emit: versions

    script:
    def access_args = task.ext.args ?: ''
    def target_args = task.ext.args2 ?: ''
    def antitarget_args = task.ext.args3 ?: ''
    def symbols = annotation ? "annotation_to_bed.py ${annotation} reference/annotation.bed" : ''
    def annotate = annotation ? '--annotate reference/annotation.bed' : ''
    def given = reused instanceof Collection ? reused : [reused]
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
    ${symbols}
    cnvkit_stage.py <<'CNVKIT'
    cnvkit.py access ${fasta} ${access_args} -o reference/access.bed
    cnvkit.py target ${bed} ${target_args} ${annotate} -o reference/targets.bed
    cnvkit.py antitarget reference/targets.bed ${antitarget_args} -g reference/access.bed -o reference/antitargets.bed
    CNVKIT
    """
    }

    stub:  // the regions as given, so that what depends on their number can be checked
    def copies = reused ? (reused instanceof Collection ? reused : [reused]).collect { f -> "cp ${f} reference/reference.${f.name.tokenize('.').last()}" }.join('\n') : 'touch reference/access.bed'
    """
    mkdir -p reference
    cp ${bed} reference/targets.bed
    touch reference/antitargets.bed ${annotation ? 'reference/annotation.bed' : ''}
    ${copies}
    """
}
