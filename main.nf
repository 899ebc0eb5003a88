#!/usr/bin/env nextflow
/*
 * cnvkit-nf: CNVkit copy-number calling for one request (see README.md).
 *
 * The launcher (bin/cnvkit-nf) validates a request and writes these params; the pipeline checks
 * them again here, so that a direct `nextflow run` or a Tower launch gets the same guarantees:
 * every rule of nextflow_schema.json (generated from the request schema: types, patterns,
 * limits, required fields), then the rules that span several params. Nothing runs when a check
 * fails. The result folder gets its manifest last, whoever launched the run.
 */
include { CNVKIT } from './workflows/cnvkit'

// A list param given as a list (params file) or as a comma-separated string (command line).
def asList(value) {
    if (value == null || value == '') {
        return []
    }
    return value instanceof List ? value : value.toString().tokenize(',')*.trim()
}

// `Son_S2_ALL.sort.mkdup.bam` -> `Son_S2_ALL`: the file name up to its first dot, as CNVkit
// and cnvkit_nf.contract.request.sample_name name samples.
def sampleName(path) {
    return file(path.toString()).name.tokenize('.')[0]
}

// Whether a value is of a JSON-schema type.
def hasType(value, type) {
    switch (type) {
        case 'string': return value instanceof CharSequence
        case 'boolean': return value instanceof Boolean
        case 'integer': return value instanceof Integer || value instanceof Long || value instanceof BigInteger
        case 'number': return value instanceof Number
        case 'array': return value instanceof List
        case 'object': return value instanceof Map
        default: return false
    }
}

// What a value breaks of one rule of nextflow_schema.json (the keywords it uses: type, pattern,
// enum, minimum, maximum, minItems, maxItems, items), as "name: reason" lines.
def ruleProblems(name, value, rule) {
    if (value == null) {
        return []
    }
    if (rule.type == 'array' && value instanceof CharSequence) {  // a=1,b on the command line
        value = asList(value)
    }
    def types = rule.type instanceof List ? rule.type : [rule.type]
    if (!types.any { type -> hasType(value, type) }) {
        def words = [string: 'a string', boolean: 'true or false', integer: 'an integer',
                     number: 'a number', array: 'a list', object: 'an object']
        return ["${name}: must be ${types.collect { type -> words[type] }.join(' or ')}, got '${value}'".toString()]
    }
    def problems = []
    if (rule.pattern && !(value.toString() ==~ rule.pattern)) {  // the whole value (all are anchored)
        problems << "${name}: ${rule.errorMessage ?: "must match ${rule.pattern}"}, got '${value}'".toString()
    }
    if (rule.enum && !(value in rule.enum)) {
        problems << "${name}: must be one of ${rule.enum.join(', ')}, got '${value}'".toString()
    }
    if (rule.minimum != null && value instanceof Number && value < rule.minimum) {
        problems << "${name}: must be at least ${rule.minimum}, got ${value}".toString()
    }
    if (rule.maximum != null && value instanceof Number && value > rule.maximum) {
        problems << "${name}: must be at most ${rule.maximum}, got ${value}".toString()
    }
    if (rule.minItems != null && value instanceof List && value.size() < rule.minItems) {
        problems << "${name}: must list at least ${rule.minItems} item(s)".toString()
    }
    if (rule.maxItems != null && value instanceof List && value.size() > rule.maxItems) {
        problems << "${name}: must list at most ${rule.maxItems} item(s)".toString()
    }
    if (rule.items && value instanceof List) {
        value.eachWithIndex { item, i -> problems += ruleProblems("${name}[${i}]", item, rule.items) }
    }
    return problems
}

// Every rule of nextflow_schema.json that the params break: its required params, then each
// param's own rules.
def schemaProblems(schema) {
    def problems = []
    schema['$defs'].each { _group, group ->
        group.required.each { name ->
            if (params[name] == null || params[name] == '') {
                problems << "${name}: required".toString()
            }
        }
        group.properties.each { name, rule -> problems += ruleProblems(name, params[name], rule) }
    }
    return problems
}

// The rules that span several params.
def crossProblems(experimental, controls) {
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
    if (params.inputs_checked && (params.indexes == null || params.checked_options == null)) {
        problems << 'indexes, checked_options: required when inputs_checked is true (the launcher\'s check)'
    }
    if (params.has_annotate && !params.annotation_file) {
        problems << 'annotation_file: required when has_annotate is true'
    }
    def names = (experimental + controls).collect { path -> sampleName(path) }
    names.countBy { name -> name }.findAll { _name, count -> count > 1 }.each { name, _count ->
        problems << "sample name '${name}' is derived from more than one BAM: rename the files".toString()
    }
    return problems
}

// Place a run's manifest (made by RESULT_MANIFEST) into the result folder, after Nextflow has
// published every file (it waits for its publishing threads before calling onComplete), and
// only if each listed file is there with its size: written under another name first and
// renamed, or put whole into object storage.
def placeManifest(made, folder, session) {
    def body = new groovy.json.JsonSlurper().parse(made)
    def absent = body.files.findAll { f ->
        def published = folder.resolve(f.path)
        !published.isFile() || published.size() != f.size
    }
    if (absent) {
        error("Not complete, no manifest: ${absent.size()} result file(s) not published, e.g. ${absent[0].path}")
    }
    def target = folder.resolve('manifest.json')
    if (folder.fileSystem != java.nio.file.FileSystems.default) {
        made.copyTo(target)
        return
    }
    def partial = folder.resolve(".manifest.${session}")
    made.copyTo(partial)
    java.nio.file.Files.move(partial, target, java.nio.file.StandardCopyOption.ATOMIC_MOVE)
}

workflow {
    def experimental = asList(params.experimental_inputs)
    def controls = asList(params.control_inputs)
    def schema = new groovy.json.JsonSlurper().parse(file("${projectDir}/nextflow_schema.json"))
    def problems = schemaProblems(schema) + crossProblems(experimental, controls)
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

    // An earlier result's manifest goes first: a folder being rewritten never looks complete.
    def folder = file(params.output_dir)
    folder.resolve('manifest.json').delete()
    def made = null
    def run = workflow  // within the handler `workflow` is not this run's
    run.onComplete {
        if (run.success && made) {
            placeManifest(made, folder, run.sessionId)
        }
    }

    CNVKIT(
        channel.fromList(samples).map { meta, path -> [meta, file(path, checkIfExists: true)] },
        file(params.ref, checkIfExists: true),
        file(params.bed, checkIfExists: true),
        annotation,
        reused,
        schema['$defs'].substep_options.properties.keySet().collectEntries { name -> [name, params[name] ?: ''] },
        params.output_dir
    )
    CNVKIT.out.manifest.subscribe { f -> made = f }
}
