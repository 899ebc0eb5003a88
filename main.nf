#!/usr/bin/env nextflow
/*
 * cnvkit-nf: CNVkit copy-number calling for one request (see README.md).
 *
 * The launcher (bin/cnvkit-nf) validates a request and writes these params; the pipeline checks
 * them again here, so that a direct `nextflow run` or a Tower launch gets the same guarantees:
 * every rule of nextflow_schema.json (generated from the request schema: types, patterns,
 * limits, required fields and the rules across params), then that sample names are unique.
 * Nothing runs when a check fails. The result folder gets its manifest last, whoever launched
 * the run.
 */
include { CNVKIT } from './workflows/cnvkit'

// A list param given as a list (params file) or as a comma-separated string (command line).
def asList(value) {
    if (value == null || value == '') {
        return []
    }
    return value instanceof List ? value : value.toString().tokenize(',')*.trim()
}

// A BAM's or CRAM's sample name, `Son_S2_ALL` of `Son_S2_ALL.sort.mkdup.bam`: what the input
// pattern of nextflow_schema.json captures (made from cnvkit_nf.contract.request's rule); null
// for a path the pattern refuses.
def sampleName(path, pattern) {
    def found = path.toString() =~ pattern
    return found.matches() ? found.group(1) : null
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
// enum, const, minimum, maximum, minItems, maxItems, items, not), as "name: reason" lines; the
// rule's errorMessage, when it has one, is the reason.
def ruleProblems(name, value, rule) {
    if (value == null) {
        return []
    }
    def types = rule.type instanceof List ? rule.type : [rule.type]
    if (rule.type && !types.any { type -> hasType(value, type) }) {
        def words = [string: 'a string', boolean: 'true or false', integer: 'an integer',
                     number: 'a number', array: 'a list', object: 'an object']
        return ["${name}: must be ${types.collect { type -> words[type] }.join(' or ')}, got '${value}'".toString()]
    }
    def problems = []
    def broken = { reason, got -> problems << "${name}: ${rule.errorMessage ?: reason}${got}".toString() }
    if (rule.pattern && !(value.toString() ==~ rule.pattern)) {  // the whole value (all are anchored)
        broken("must match ${rule.pattern}", ", got '${value}'")
    }
    if (rule.enum && !(value in rule.enum)) {
        broken("must be one of ${rule.enum.join(', ')}", ", got '${value}'")
    }
    if (rule.containsKey('const') && value != rule['const']) {
        broken("must be ${rule['const']}", ", got '${value}'")
    }
    if (rule.minimum != null && value instanceof Number && value < rule.minimum) {
        broken("must be at least ${rule.minimum}", ", got ${value}")
    }
    if (rule.maximum != null && value instanceof Number && value > rule.maximum) {
        broken("must be at most ${rule.maximum}", ", got ${value}")
    }
    if (rule.minItems != null && value instanceof List && value.size() < rule.minItems) {
        broken("must list at least ${rule.minItems} item(s)", '')
    }
    if (rule.maxItems != null && value instanceof List && value.size() > rule.maxItems) {
        broken("must list at most ${rule.maxItems} item(s)", '')
    }
    if (rule.not != null && !ruleProblems(name, value, rule.not)) {
        broken('is not allowed here', '')
    }
    if (rule.items && value instanceof List) {
        value.eachWithIndex { item, i -> problems += ruleProblems("${name}[${i}]", item, rule.items) }
    }
    return problems
}

// What the params break of an object rule of nextflow_schema.json: its required params (null or
// '' is missing), each param's own rule, and its rules across params (allOf; of an if/then/else,
// the `then` applies when the params meet the `if`, the `else` otherwise).
def paramsProblems(rule, values) {
    def problems = []
    rule.required.each { name ->
        if (values[name] == null || values[name] == '') {
            problems << "${name}: ${rule.errorMessage ?: 'required'}".toString()
        }
    }
    rule.properties.each { name, own -> problems += ruleProblems(name, values[name], own) }
    rule.allOf.each { part -> problems += paramsProblems(part, values) }
    if (rule['if'] != null) {
        def branch = paramsProblems(rule['if'], values) ? rule['else'] : rule['then']
        problems += branch ? paramsProblems(branch, values) : []
    }
    return problems
}

// Every rule of nextflow_schema.json that the params break: each group's (a list param given
// as a comma-separated string, e.g. on the command line, is read as its list).
def schemaProblems(schema) {
    def groups = schema['$defs'].values()
    def lists = groups.collectMany { group ->
        group.properties.findAll { _name, rule -> rule.type == 'array' }.keySet() as List
    }
    def values = params.collectEntries { name, value ->
        [name, name in lists && value instanceof CharSequence ? asList(value) : value]
    }
    return groups.collectMany { group -> paramsProblems(group, values) }
}

// Sample names must be unique across all inputs (a rule the schema cannot state).
def sampleProblems(experimental, controls, pattern) {
    def names = (experimental + controls).collect { path -> sampleName(path, pattern) }
        .findAll { name -> name != null }
    return names.countBy { name -> name }.findAll { _name, count -> count > 1 }.collect { name, _count ->
        "sample name '${name}' is derived from more than one BAM: rename the files".toString()
    }
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
    def inputs = schema['$defs'].input_options.properties
    def bam = inputs.experimental_inputs.items.pattern
    def problems = schemaProblems(schema) + sampleProblems(experimental, controls, bam)
    if (problems) {
        error("Invalid parameters:\n  - " + problems.join('\n  - '))
    }

    // Controls first: their coverage is what the reference, and so every tumour, waits for.
    def samples = controls.collect { path -> [[id: sampleName(path, bam), role: 'control'], path] } +
                  experimental.collect { path -> [[id: sampleName(path, bam), role: 'experimental'], path] }
    def annotation = params.has_annotate ? file(params.annotation_file, checkIfExists: true) : []
    // A reference built earlier, then its record (x.cnn -> x.json: bin/reference_record.py's
    // rule, which nextflow_schema.json carries) when there is one.
    def reused = []
    if (params.reference_cnn) {
        def cnn = file(params.reference_cnn, checkIfExists: true)
        def where = inputs.reference_cnn['x-record']
        def record = file(cnn.toString().replaceFirst(where.pattern, where.replacement))
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
