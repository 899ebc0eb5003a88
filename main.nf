#!/usr/bin/env nextflow
/*
 * cnvkit-nf: CNVkit copy-number calling for one request (see README.md).
 *
 * The launcher (bin/cnvkit-nf) validates a request and writes these params; the pipeline checks
 * them again here, so that a direct `nextflow run` or a Tower launch gets the same guarantees:
 * option strings limited to a conservative character set, required inputs present, sample names
 * unique, the reference extensions (reference_cnn, reference_only) used consistently. Nothing
 * runs when a check fails.
 */
include { CNVKIT } from './workflows/cnvkit'

// Must match PIPELINE_CHAR_PATTERN in cnvkit_nf/confs.py (a test compares them).
def OPTION_PATTERN() { return /[ A-Za-z0-9_.,=:+\/%-]*/ }

def CONF_PARAMS() {
    return ['target_conf', 'antitarget_conf', 'coverage_conf', 'sex_conf', 'reference_conf',
            'fix_conf', 'segment_conf', 'genemetrics_conf', 'call_conf']
}

// A list param given as a list (params file) or as a comma-separated string (command line).
def asList(value) {
    if (value == null || value == '') {
        return []
    }
    return value instanceof List ? value : value.toString().tokenize(',')*.trim()
}

// `Son_S2_ALL.sort.mkdup.bam` -> `Son_S2_ALL`, as cnvkit_nf.request.sample_name does.
def sampleName(path) {
    return file(path.toString()).name.replaceFirst(/\.bam$/, '').tokenize('.')[0]
}

def paramProblems(experimental, controls) {
    def problems = []
    if (params.reference_only) {
        if (experimental) {
            problems << 'experimental_inputs: must be [] when reference_only is true: a reference-only job calls no sample'
        }
        if (params.reference_cnn) {
            problems << 'reference_cnn: cannot be given with reference_only: a reference-only job builds a new reference from control_inputs'
        }
    } else if (!experimental) {
        problems << 'experimental_inputs: at least one BAM is required'
    }
    if (params.reference_cnn && controls) {
        problems << 'control_inputs: must be [] when reference_cnn is given: the reference takes the place of the controls'
    }
    if (params.reference_cnn && !params.reference_cnn.toString().endsWith('.cnn')) {
        problems << 'reference_cnn: must be a CNVkit reference ending in .cnn'
    }
    ['output_dir', 'ref', 'bed'].each { name ->
        if (!params[name]) {
            problems << "${name}: required".toString()
        }
    }
    if (params.has_annotate && !params.annotation_file) {
        problems << 'annotation_file: required when has_annotate is true'
    }
    CONF_PARAMS().each { name ->
        def value = params[name] ?: ''
        if (!(value.toString() ==~ OPTION_PATTERN())) {
            problems << "${name}: only letters, digits, spaces and _ . , = : + / % - are allowed".toString()
        }
    }
    ['coverage_cpus', 'segment_cpus'].each { name ->
        if (!(params[name].toString() ==~ /^[1-9][0-9]*$/)) {
            problems << "${name}: must be a positive integer, got '${params[name]}'".toString()
        }
    }
    ['plots', 'inputs_checked', 'reference_only'].each { name ->
        if (!(params[name] instanceof Boolean)) {
            problems << "${name}: must be true or false, got '${params[name]}'".toString()
        }
    }
    def inputs = experimental + controls + [params.ref, params.bed, params.reference_cnn] +
                 (params.has_annotate ? [params.annotation_file] : [])
    inputs.findAll { path -> path }.each { path ->
        // Files are staged into task scripts under their own name: keep names shell-inert.
        if (!(file(path.toString()).name ==~ /[A-Za-z0-9_.+-]+/)) {
            problems << "${path}: file name may only contain letters, digits and _ . + -".toString()
        }
    }
    def names = (experimental + controls).collect { path -> sampleName(path) }
    names.each { name ->
        if (!(name ==~ /^[A-Za-z0-9_-]+$/)) {
            problems << "sample name '${name}' (from the BAM file name) may only contain letters, digits, _ and -".toString()
        }
    }
    names.countBy { name -> name }.findAll { _name, count -> count > 1 }.each { name, _count ->
        problems << "sample name '${name}' is derived from more than one BAM: rename the files".toString()
    }
    return problems
}

workflow {
    def experimental = asList(params.experimental_inputs)
    def controls = asList(params.control_inputs)
    def problems = paramProblems(experimental, controls)
    if (problems) {
        error("Invalid parameters:\n  - " + problems.join('\n  - '))
    }

    // Controls first: their coverage is what the reference, and so every tumour, waits for.
    def samples = controls.collect { path -> [[id: sampleName(path), role: 'control'], path] } +
                  experimental.collect { path -> [[id: sampleName(path), role: 'experimental'], path] }
    def annotation = params.has_annotate ? file(params.annotation_file, checkIfExists: true) : []
    // A reference built earlier, then its record (x.cnn -> x.json) when there is one.
    def reused = []
    if (params.reference_cnn) {
        def cnn = file(params.reference_cnn, checkIfExists: true)
        def record = file(cnn.toString().replaceFirst(/\.cnn$/, '.json'))
        reused = record.exists() ? [cnn, record] : [cnn]
    }

    CNVKIT(
        channel.fromList(samples).map { meta, path -> [meta, file(path, checkIfExists: true)] },
        file(params.ref, checkIfExists: true),
        file(params.bed, checkIfExists: true),
        annotation,
        reused,
        params.output_dir
    )
}
