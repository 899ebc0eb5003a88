// The controls' panel (issue 27): each control's noise against a reference pooled from the
// other controls. Every control C is a block of lines beside the others (bin/cnvkit_stage.py
// --jobs): reference from the others' coverages, fix of C's against it, segment -m none (one
// segment per chromosome arm, so the residuals are the bins' scatter, not changes); after them
// (`===`) metrics of every control: reference/controls-metrics.tsv (CNVkit's columns sample,
// segments, stdev, mad, iqr, bivar; a control's sample is panel/C.cnr), the stage's only
// result (its panel/ files are not kept).
// It runs when the job pools its reference from two or more controls: not when a reference is
// reused or given, nor with reference_mode leave-one-out, which takes no controls (every sample
// is called against all the others already); the workflow starts it once the job's reference
// is built, beside the tumours' calls. Its references are built without -f, so they have no GC
// or repeat-masked columns and fix makes neither correction: every control is measured alike,
// by its own library's unevenness, and no FASTA is read once per control.
// Options: task.ext.args -> reference (CNVKIT_REFERENCE's: reference_conf, with --no-edge for
// amplicon and wgs), then -x SEX when every control was given that sex, as the job's
// reference; ext.args2 -> fix (CNVKIT_SAMPLE's: fix_conf, with --no-edge for amplicon and wgs).
process CNVKIT_PANEL {
    tag "${metas.size()} controls"
    conda "bioconda::cnvkit=0.9.14"
    container "${ workflow.containerEngine in ['singularity', 'apptainer'] ?
        'https://community-cr-prod.seqera.io/docker/registry/v2/blobs/sha256/39/3935f8d7507f85fd20e073f0625bb6bdff8aa1b6044f4bbb720c9a8063ea0390/data' :
        'community.wave.seqera.io/library/cnvkit:0.9.14--288e98d6210b7304' }"

    input:
    // the controls; in their order, their target and antitarget coverages; the sex they were
    // all given, or null; the task's CPUs (as many blocks at once)
    tuple val(metas), path(targets), path(antitargets), val(sex), val(slots)
    val options  // checked option strings, {FIELD: {args, processes}}: read by conf/modules.config

    output:
    path "reference/controls-metrics.tsv", emit: metrics
    tuple val("${task.process}"), val('cnvkit'), eval('python3 -c "import importlib.metadata as m; print(m.version(\'cnvkit\'))" 2>/dev/null || cnvkit.py version'), emit: versions

    script:
    def reference_args = [task.ext.args ?: '', sex ? "-x ${sex}" : ''].findAll().join(' ')
    def fix_args = task.ext.args2 ?: ''
    def rows = [metas, targets, antitargets].transpose()
    def blocks = rows.collect { meta, target, antitarget ->
        def others = rows.findAll { other -> other[0].id != meta.id }
            .collectMany { other -> other[1, 2] }.sort { f -> f.name }
        def out = "panel/${meta.id}"
        """---
    cnvkit.py reference ${others.join(' ')} ${reference_args} -o ${out}.reference.cnn
    cnvkit.py fix ${target} ${antitarget} ${out}.reference.cnn ${fix_args} -o ${out}.cnr
    cnvkit.py segment ${out}.cnr -m none -o ${out}.cns"""
    }
    def ids = metas*.id
    """
    mkdir -p panel reference
    cnvkit_stage.py --jobs ${task.cpus} <<'CNVKIT'
    ${blocks.join('\n    ')}
    ===
    cnvkit.py metrics ${ids.collect { id -> "panel/${id}.cnr" }.join(' ')} -s ${ids.collect { id -> "panel/${id}.cns" }.join(' ')} -o reference/controls-metrics.tsv
    CNVKIT
    """

    stub:
    """
    mkdir -p reference
    touch reference/controls-metrics.tsv
    """
}
